//! Images and text → model input, as VILA prepares them for NVILA-Lite (nvila.md §2, §3, §7).
//!
//! - [`tokenizer`]: the `llm/` tokenizer (ids of `<image>`, `<|im_end|>`, eos, sentinel; stop ids).
//! - [`template`]: VILA's qwen2 chat template, verified against `tokenizer_config.json`.
//! - [`conversation`]: turns, roles, system-prompt variants, media-tag handling.
//! - [`masking`]: labels by VILA's greedy template match; expanded-length helpers.
//! - [`tiling`], [`resize`], [`image`]: `dynamic` tiling with a bit-exact port of Pillow's
//!   bicubic resize, decoding with size limits, SigLIP rescale/normalise.
//!
//! [`Processor`] ties them together:
//! - [`Processor::process_training`] follows `llava/data/dataset_impl/llava.py::LLaVADataset` +
//!   `llava/data/base.py::BaseDataset.__getitem__` + the collator's truncation: media tags are
//!   removed from the text, one `<image>` per image goes to the start of the first human turn,
//!   and under `dynamic` every image is tiled and its tag becomes `"<image>\n" * n_tiles`;
//! - [`Processor::process_generation`] follows `LlavaMetaForCausalLM.generate_content`: a single
//!   image is tiled (`"<image>\n" * n_tiles`); several images are each resized to one tile and keep
//!   a bare `<image>` (no "\n"); the prompt gets the default system prompt and the generation
//!   prompt.
//!
//! Deliberate differences from VILA, which silently drops or ignores them: more `<image>` tags
//! than images is an error, and so is a generation prompt longer than `model_max_length`.

pub mod conversation;
pub mod image;
pub mod masking;
pub mod resize;
pub mod template;
pub mod tiling;
pub mod tokenizer;

use std::path::Path;

use ::image::RgbImage;

pub use self::conversation::{Role, SystemPrompt, Turn};
use self::conversation::{
    count_image_tags, extract_media_text, remove_media_tokens, tokenize_conversation,
};
pub use self::image::{MAX_IMAGE_PIXELS, decode_image, load_image};
pub use self::masking::{IGNORE_INDEX, expanded_length, ids_kept_after_expansion};
pub use self::resize::PillowVersion;
pub use self::tiling::Grid;
use self::tokenizer::IMAGE_TOKEN;
pub use self::tokenizer::Tokenizer;
use crate::error::ModelError;

/// Largest `max_tiles` accepted: the whole image is resized to `size·cols × size·rows` first, so
/// the tile count bounds that allocation (VILA uses 12).
pub const MAX_TILES_LIMIT: u32 = 64;

/// Largest tile side accepted (SigLIP checkpoints use 224–896).
pub const MAX_IMAGE_SIZE: u32 = 2048;

/// How images become tiles (`image_aspect_ratio` in VILA's config / `DataArguments`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageAspectRatio {
    /// InternVL-style tiling (`dynamic_preprocess`); NVILA-Lite's setting.
    Dynamic,
    /// One direct resize to `image_size × image_size`, ignoring the aspect ratio (VILA's
    /// training default `resize`).
    Resize,
}

/// Processor settings; [`ProcessorConfig::nvila_lite`] gives NVILA-Lite-8B's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorConfig {
    /// Tile side in pixels (the vision tower's `image_size`: 448; the tiny fixture uses 56).
    pub image_size: u32,
    /// `min_tiles` (VILA default 1).
    pub min_tiles: u32,
    /// `max_tiles` (VILA default 12).
    pub max_tiles: u32,
    /// Tiling mode.
    pub image_aspect_ratio: ImageAspectRatio,
    /// Overrides `tokenizer_config.json`'s `model_max_length` (as VILA's `--model_max_length`).
    pub model_max_length: Option<usize>,
    /// Whose resize pass order to reproduce (see [`resize::PillowVersion`]): Pillow ≤ 12 by
    /// default; Pillow 13 to match references made with it.
    pub pillow: PillowVersion,
}

impl ProcessorConfig {
    /// NVILA-Lite-8B: 448-px tiles, 1..=12 tiles, `dynamic`, the tokenizer's max length.
    pub fn nvila_lite() -> Self {
        Self {
            image_size: 448,
            min_tiles: 1,
            max_tiles: 12,
            image_aspect_ratio: ImageAspectRatio::Dynamic,
            model_max_length: None,
            pillow: PillowVersion::Pillow12,
        }
    }

    fn validate(&self, llm_dir: &Path) -> Result<(), ModelError> {
        let bad = |message: String| {
            Err(ModelError::Config {
                path: llm_dir.to_owned(),
                message,
            })
        };
        if self.image_size == 0 || self.image_size > MAX_IMAGE_SIZE {
            return bad(format!(
                "image_size {} is not in 1..={MAX_IMAGE_SIZE}",
                self.image_size
            ));
        }
        if self.min_tiles == 0
            || self.min_tiles > self.max_tiles
            || self.max_tiles > MAX_TILES_LIMIT
        {
            return bad(format!(
                "min_tiles {} / max_tiles {}: need 1 <= min_tiles <= max_tiles <= {MAX_TILES_LIMIT}",
                self.min_tiles, self.max_tiles
            ));
        }
        Ok(())
    }
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self::nvila_lite()
    }
}

/// Normalised tiles, `[n_tiles, 3, image_size, image_size]` row-major f32 (values in [−1, 1]).
#[derive(Debug, Clone, PartialEq)]
pub struct PixelValues {
    pub data: Vec<f32>,
    pub n_tiles: usize,
    pub image_size: usize,
}

impl PixelValues {
    /// `[n_tiles, 3, image_size, image_size]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.n_tiles, 3, self.image_size, self.image_size]
    }

    fn from_tiles(tiles: &[RgbImage], image_size: u32) -> Self {
        let mut data = Vec::new();
        for t in tiles {
            self::image::normalize_into(t, &mut data);
        }
        Self {
            data,
            n_tiles: tiles.len(),
            image_size: image_size as usize,
        }
    }
}

/// One training sample: ids, labels (−100 where untrained) and one tile per `<image>` id.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSample {
    /// The rendered conversation (before any truncation).
    pub text: String,
    /// Token ids, truncated to `model_max_length` (collator truncation, before expansion).
    pub input_ids: Vec<u32>,
    /// Labels, same length as `input_ids`.
    pub labels: Vec<i64>,
    /// Tiles of all images in order; as many as `<image>` ids in `input_ids`.
    pub pixel_values: PixelValues,
    /// Tiles kept per image (thumbnail included); images cut by truncation are dropped.
    pub n_tiles_per_image: Vec<usize>,
    /// The `dynamic` grid chosen per image (`None` under `resize`), before truncation.
    pub grids: Vec<Option<Grid>>,
}

/// Prompt ids and tiles for generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationInput {
    /// The rendered prompt, ending with `<|im_start|>assistant\n`.
    pub text: String,
    pub input_ids: Vec<u32>,
    pub pixel_values: PixelValues,
    pub n_tiles_per_image: Vec<usize>,
}

/// VILA's processor: tokenizer + image settings.
#[derive(Debug, Clone)]
pub struct Processor {
    tokenizer: Tokenizer,
    config: ProcessorConfig,
    model_max_length: usize,
}

impl Processor {
    /// Load the tokenizer from a checkpoint's `llm/` folder and check `config`.
    pub fn load(llm_dir: &Path, config: ProcessorConfig) -> Result<Self, ModelError> {
        let tokenizer = Tokenizer::load(llm_dir)?;
        Self::new(tokenizer, config)
    }

    /// Build from a loaded tokenizer. `model_max_length` comes from `config` or else from the
    /// tokenizer config; one of them must set it.
    pub fn new(tokenizer: Tokenizer, config: ProcessorConfig) -> Result<Self, ModelError> {
        config.validate(tokenizer.dir())?;
        let model_max_length = config
            .model_max_length
            .or(tokenizer.model_max_length())
            .filter(|&n| n > 0)
            .ok_or_else(|| ModelError::Config {
                path: tokenizer.dir().join("tokenizer_config.json"),
                message: "no usable `model_max_length`; set ProcessorConfig::model_max_length"
                    .to_owned(),
            })?;
        Ok(Self {
            tokenizer,
            config,
            model_max_length,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The settings.
    pub fn config(&self) -> &ProcessorConfig {
        &self.config
    }

    /// The effective `model_max_length`.
    pub fn model_max_length(&self) -> usize {
        self.model_max_length
    }

    /// 8-bit tiles of one image: `dynamic` tiling when `tile` and the mode is `Dynamic`
    /// (`process_image(enable_dynamic_res=True)`), else one resize to `image_size²`.
    /// `what` names the image in errors.
    pub fn image_tiles(
        &self,
        image: &RgbImage,
        tile: bool,
        what: &str,
    ) -> Result<(Option<Grid>, Vec<RgbImage>), ModelError> {
        self::image::check_image_size(what, image.width(), image.height())?;
        let s = self.config.image_size;
        if tile && self.config.image_aspect_ratio == ImageAspectRatio::Dynamic {
            let (grid, tiles) = tiling::dynamic_tiles(
                image,
                s,
                self.config.min_tiles,
                self.config.max_tiles,
                self.config.pillow,
            );
            Ok((Some(grid), tiles))
        } else {
            Ok((
                None,
                vec![resize::resize_bicubic_as(image, s, s, self.config.pillow)],
            ))
        }
    }

    /// A training sample from a LLaVA-format conversation and its images (in order).
    ///
    /// `<image>`/`<video>` tags are removed from every turn's text, and one `<image>` per image
    /// is put at the start of the first turn, which must be `human`; more tags than images is an
    /// error. Labels follow [`masking`]; ids, labels and tiles are then truncated to
    /// `model_max_length` like VILA's collator (tiles whose `<image>` id was cut are dropped).
    pub fn process_training(
        &self,
        turns: &[Turn],
        images: &[RgbImage],
        system: &SystemPrompt,
    ) -> Result<TrainingSample, ModelError> {
        let first = turns
            .first()
            .ok_or_else(|| ModelError::Input("empty conversation".to_owned()))?;
        if first.from != Role::Human {
            return Err(ModelError::Input(format!(
                "the first turn must be from `human`, not `{}` (VILA raises the same)",
                first.from.template_role()
            )));
        }
        let tags: usize = turns.iter().map(|t| count_image_tags(&t.value)).sum();
        if tags > images.len() {
            return Err(ModelError::Input(format!(
                "the conversation has {tags} `<image>` tags but only {} images",
                images.len()
            )));
        }

        let mut all_tiles = Vec::new();
        let mut n_tiles_per_image = Vec::with_capacity(images.len());
        let mut grids = Vec::with_capacity(images.len());
        for (k, img) in images.iter().enumerate() {
            let (grid, tiles) = self.image_tiles(img, true, &format!("image {k}"))?;
            n_tiles_per_image.push(tiles.len());
            grids.push(grid);
            all_tiles.extend(tiles);
        }

        // LLaVADataset.process (tag removal) then extract_media (media first, text parts cleaned).
        let mut turns: Vec<Turn> = turns
            .iter()
            .map(|t| Turn::new(t.from, extract_media_text(&remove_media_tokens(&t.value))))
            .collect();
        let mut prefix = String::new();
        for &n in &n_tiles_per_image {
            match self.config.image_aspect_ratio {
                // dynamic_process_images_and_prompt: "<image>\n" per tile.
                ImageAspectRatio::Dynamic => prefix.push_str(&format!("{IMAGE_TOKEN}\n").repeat(n)),
                ImageAspectRatio::Resize => prefix.push_str(IMAGE_TOKEN),
            }
        }
        turns[0].value = prefix + &turns[0].value;

        let (text, mut input_ids, mut labels) =
            masking::preprocess_conversation(&self.tokenizer, &turns, system)?;

        let image_id = self.tokenizer.image_token_id();
        let count = |ids: &[u32]| ids.iter().filter(|&&id| id == image_id).count();
        if count(&input_ids) != all_tiles.len() {
            // The collator's check; only reachable when the text itself tokenizes to `<image>`.
            return Err(ModelError::Input(format!(
                "{} `<image>` ids but {} tiles",
                count(&input_ids),
                all_tiles.len()
            )));
        }
        if input_ids.len() > self.model_max_length {
            tracing::warn!(
                len = input_ids.len(),
                max = self.model_max_length,
                "truncating a training sample"
            );
            input_ids.truncate(self.model_max_length);
            labels.truncate(self.model_max_length);
            let mut keep = count(&input_ids);
            all_tiles.truncate(keep);
            for n in &mut n_tiles_per_image {
                let kept = (*n).min(keep);
                keep -= kept;
                *n = kept;
            }
            while n_tiles_per_image.last() == Some(&0) {
                n_tiles_per_image.pop();
            }
        }
        Ok(TrainingSample {
            text,
            input_ids,
            labels,
            pixel_values: PixelValues::from_tiles(&all_tiles, self.config.image_size),
            n_tiles_per_image,
            grids,
        })
    }

    /// Prompt ids and tiles for generation (`generate_content`).
    ///
    /// `<image>` tags in `prompt` mark where the images go; with no tags all images go first (as
    /// VILA's `[image, ..., text]` prompt lists). Tags must then match the number of images.
    pub fn process_generation(
        &self,
        prompt: &str,
        images: &[RgbImage],
    ) -> Result<GenerationInput, ModelError> {
        let tags = count_image_tags(prompt);
        if tags > images.len() || (tags != 0 && tags != images.len()) {
            return Err(ModelError::Input(format!(
                "the prompt has {tags} `<image>` tags but {} images were given (use one tag per \
                 image, or none to put all images first)",
                images.len()
            )));
        }
        // extract_media on the prompt parts: text parts with media tokens are cleaned.
        let mut value = String::new();
        if tags == 0 {
            value.push_str(&IMAGE_TOKEN.repeat(images.len()));
            value.push_str(&extract_media_text(prompt));
        } else {
            for (k, part) in prompt.split(IMAGE_TOKEN).enumerate() {
                if k > 0 {
                    value.push_str(IMAGE_TOKEN);
                }
                value.push_str(&extract_media_text(part));
            }
        }

        let single = images.len() == 1;
        let mut all_tiles = Vec::new();
        let mut n_tiles_per_image = Vec::with_capacity(images.len());
        for (k, img) in images.iter().enumerate() {
            let (grid, tiles) = self.image_tiles(img, single, &format!("image {k}"))?;
            if grid.is_some() {
                value = value.replace(IMAGE_TOKEN, &format!("{IMAGE_TOKEN}\n").repeat(tiles.len()));
            }
            n_tiles_per_image.push(tiles.len());
            all_tiles.extend(tiles);
        }

        let turns = [Turn::new(Role::Human, value)];
        let (text, input_ids) =
            tokenize_conversation(&self.tokenizer, &turns, &SystemPrompt::Default, None, true)?;
        if input_ids.len() > self.model_max_length {
            return Err(ModelError::Input(format!(
                "the prompt is {} tokens, longer than model_max_length {}",
                input_ids.len(),
                self.model_max_length
            )));
        }
        Ok(GenerationInput {
            text,
            input_ids,
            pixel_values: PixelValues::from_tiles(&all_tiles, self.config.image_size),
            n_tiles_per_image,
        })
    }
}
