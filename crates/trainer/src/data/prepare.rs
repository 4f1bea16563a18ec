//! One record → model input, exactly as VILA's training path prepares it.
//!
//! `llava/data/base.py::BaseDataset.__getitem__` (NVlabs/VILA): the images are read, the
//! media tags are removed and one `<image>` per image goes to the start of the first human
//! turn; with `image_aspect_ratio: dynamic` *every* image is tiled and its tag becomes
//! `"<image>\n" × tiles`; the chat template is applied, tokenized and label-masked by the
//! greedy template match. All of that is nvila-model's [`Processor::process_training`],
//! which this module calls rather than re-implements; it also applies the collator's
//! truncation to `model_max_length` *before* image expansion (`llava/data/collate.py`).
//!
//! What this module adds is the second truncation, `LlavaMetaForCausalLM._embed`'s cut to
//! `model_max_length` *after* each `<image>` id has become `embeddings_per_image` positions
//! (121 projected features + the encoder's "\n" = 122 for NVILA-Lite): ids (and the tiles of
//! the images among them) that would start past the cut are dropped here, so no tile is
//! encoded that the LLM would never see. An image cut partway is kept whole; the model's
//! `embed_inputs` cuts its last embeddings, as `_embed` does.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use nvila_model::ModelError;
use nvila_model::config::CheckpointLayout;
use nvila_model::nvila::{IMAGE_END_TOKENS, processor_config_for};
use nvila_model::processor::{
    IGNORE_INDEX, ImageAspectRatio, PixelValues, Processor, ids_kept_after_expansion, load_image,
};
use nvila_model::projector::{DownSampleBlockFix, ProjectorConfig};
use nvila_model::vision::SiglipVisionConfig;

use super::error::DataError;
use super::set::SampleRef;

/// Overrides of the checkpoint's settings, from the training arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrepareOptions {
    /// `--model_max_length` (the team uses 4096); None: the tokenizer config's.
    pub model_max_length: Option<usize>,
    /// `--image_aspect_ratio`; None: the checkpoint's `config.json`. VILA's command line
    /// wins over the checkpoint (`model.config.image_aspect_ratio = data_args...`).
    pub image_aspect_ratio: Option<ImageAspectRatio>,
}

/// A sample ready for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedSample {
    /// Index in the concatenated mixture (what the sampler handed out).
    pub index: usize,
    /// Registry name of its dataset.
    pub dataset: String,
    /// Its dataset file.
    pub file: PathBuf,
    /// Its record's index in that file.
    pub record: usize,
    /// The record's `id`.
    pub id: Option<String>,
    /// Token ids, after both truncations (see the module docs).
    pub input_ids: Vec<u32>,
    /// Labels: the id where trained, −100 elsewhere; same length as `input_ids`.
    pub labels: Vec<i64>,
    /// Tiles of all images in order, `[n_tiles, 3, s, s]`, one per `<image>` id.
    pub pixel_values: PixelValues,
    /// Tiles per image (thumbnail included); images cut away by truncation are absent.
    pub tiles_per_image: Vec<usize>,
    /// Labels ≠ −100 after the collator's truncation, before the one after expansion: this
    /// sample's share of VILA's loss denominator (`num_items_in_batch`, counted by HF's
    /// `get_batch_samples` on the collated labels).
    pub num_supervised_tokens: usize,
    /// Labels the loss actually sums over: those ≠ −100 that survive `_embed`'s truncation,
    /// excluding position 0 (the causal shift never predicts it). Equal to
    /// `num_supervised_tokens` unless the expanded sequence was cut.
    pub num_loss_tokens: usize,
    /// LLM positions after image expansion and `_embed`'s truncation.
    pub expanded_len: usize,
}

impl PreparedSample {
    /// The pixel data and `[tiles, 3, s, s]` shape of image `k`.
    pub fn image(&self, k: usize) -> Option<(&[f32], [usize; 4])> {
        let per_tile = 3 * self.pixel_values.image_size * self.pixel_values.image_size;
        let n = *self.tiles_per_image.get(k)?;
        let first: usize = self.tiles_per_image[..k].iter().sum();
        let data = self
            .pixel_values
            .data
            .get(first * per_tile..(first + n) * per_tile)?;
        Some((
            data,
            [
                n,
                3,
                self.pixel_values.image_size,
                self.pixel_values.image_size,
            ],
        ))
    }
}

/// Turns records into [`PreparedSample`]s with a checkpoint's processor.
#[derive(Debug, Clone)]
pub struct SamplePreparer {
    processor: Processor,
    embeddings_per_image: usize,
    pad_token_id: u32,
}

impl SamplePreparer {
    /// The processor a checkpoint folder describes (tile size from `vision_tower/`, tiling
    /// from the top-level `config.json`, tokenizer and chat template from `llm/`), with
    /// `options` applied, and the positions one `<image>` id expands to (the projector's
    /// output tokens per tile plus the tokenized encoder end token "\n"). Reads configs and
    /// the tokenizer only, no weights.
    pub fn from_checkpoint(
        model_dir: &Path,
        options: &PrepareOptions,
    ) -> Result<SamplePreparer, DataError> {
        let layout = CheckpointLayout::open(model_dir).map_err(DataError::checkpoint)?;
        let vision_path = layout.vision_tower_dir.join("config.json");
        let vision = SiglipVisionConfig::from_file(&vision_path).map_err(DataError::checkpoint)?;
        let mut config = processor_config_for(
            &layout.config,
            vision.image_size,
            &layout.root.join("config.json"),
        )
        .map_err(DataError::checkpoint)?;
        if let Some(aspect) = options.image_aspect_ratio {
            config.image_aspect_ratio = aspect;
        }
        config.model_max_length = options.model_max_length;
        let processor = Processor::load(&layout.llm_dir, config).map_err(DataError::checkpoint)?;

        let projector_path = layout.mm_projector_dir.join("config.json");
        let projector = ProjectorConfig::from_file(&projector_path)
            .and_then(|c| c.projector_type(&projector_path))
            .map_err(DataError::checkpoint)?;
        let rate = projector.downsample_rate();
        let tokens = DownSampleBlockFix { rate }
            .tokens_out(vision.num_patches())
            .ok_or_else(|| {
                DataError::checkpoint(ModelError::Config {
                    path: vision_path.clone(),
                    message: format!(
                        "{} patches per tile are not a square grid the projector can merge",
                        vision.num_patches()
                    ),
                })
            })?;
        let end = processor
            .tokenizer()
            .encode(IMAGE_END_TOKENS)
            .map_err(DataError::checkpoint)?
            .len();
        Self::new(processor, tokens + end)
    }

    /// A preparer from a loaded processor; `embeddings_per_image` LLM positions per
    /// `<image>` id. Fails if the tokenizer has no pad token.
    pub fn new(
        processor: Processor,
        embeddings_per_image: usize,
    ) -> Result<SamplePreparer, DataError> {
        let pad_token_id =
            processor
                .tokenizer()
                .pad_token_id()
                .ok_or_else(|| DataError::NoPadToken {
                    path: processor.tokenizer().dir().join("tokenizer_config.json"),
                })?;
        Ok(Self {
            processor,
            embeddings_per_image: embeddings_per_image.max(1),
            pad_token_id,
        })
    }

    /// The processor (tokenizer, tiling settings, effective `model_max_length`).
    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    /// LLM positions one `<image>` id becomes.
    pub fn embeddings_per_image(&self) -> usize {
        self.embeddings_per_image
    }

    /// The id right-padding uses (the tokenizer's `pad_token`).
    pub fn pad_token_id(&self) -> u32 {
        self.pad_token_id
    }

    /// Prepares one sample; errors name the dataset, file and record.
    pub fn prepare(&self, sample: &SampleRef<'_>) -> Result<PreparedSample, DataError> {
        let wrap = |source: ModelError| DataError::Sample {
            dataset: sample.dataset.to_string(),
            file: sample.file.to_path_buf(),
            record: sample.record_index,
            id: sample.record.id.clone(),
            source: Box::new(source),
        };
        let images = sample
            .image_paths()
            .iter()
            .map(|p| load_image(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(wrap)?;
        let mut out = self
            .processor
            .process_training(&sample.record.turns, &images, &sample.system)
            .map_err(wrap)?;
        drop(images);

        let num_supervised_tokens = count_supervised(&out.labels);
        let image_id = self.processor.tokenizer().image_token_id();
        let max_len = self.processor.model_max_length();
        let kept =
            ids_kept_after_expansion(&out.input_ids, image_id, self.embeddings_per_image, max_len);
        if kept < out.input_ids.len() {
            tracing::warn!(
                dataset = sample.dataset,
                record = sample.record_index,
                ids = out.input_ids.len(),
                kept,
                max_len,
                "sample is longer than model_max_length after image expansion; truncating as VILA's _embed does"
            );
            out.input_ids.truncate(kept);
            out.labels.truncate(kept);
            let keep_tiles = out.input_ids.iter().filter(|&&id| id == image_id).count();
            truncate_tiles(
                &mut out.pixel_values,
                &mut out.n_tiles_per_image,
                keep_tiles,
            );
        }
        let expanded_len =
            expanded_positions(&out.input_ids, image_id, self.embeddings_per_image).min(max_len);
        let cut = expanded_prefix_labels(
            &out.input_ids,
            &out.labels,
            image_id,
            self.embeddings_per_image,
            max_len,
        );
        Ok(PreparedSample {
            index: sample.index,
            dataset: sample.dataset.to_string(),
            file: sample.file.to_path_buf(),
            record: sample.record_index,
            id: sample.record.id.clone(),
            input_ids: out.input_ids,
            labels: out.labels,
            pixel_values: out.pixel_values,
            tiles_per_image: out.n_tiles_per_image,
            num_supervised_tokens,
            num_loss_tokens: cut,
            expanded_len,
        })
    }

    /// [`Self::prepare`] with a panic turned into [`DataError::WorkerPanicked`] naming the
    /// record, so one bad record cannot hang a loader waiting for its result.
    pub fn prepare_catching(&self, sample: &SampleRef<'_>) -> Result<PreparedSample, DataError> {
        match catch_unwind(AssertUnwindSafe(|| self.prepare(sample))) {
            Ok(result) => result,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                Err(DataError::WorkerPanicked {
                    dataset: sample.dataset.to_string(),
                    file: sample.file.to_path_buf(),
                    record: sample.record_index,
                    id: sample.record.id.clone(),
                    message,
                })
            }
        }
    }
}

/// Labels that are trained (≠ −100).
pub fn count_supervised(labels: &[i64]) -> usize {
    labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
}

/// Positions after expansion, before truncation.
fn expanded_positions(ids: &[u32], image_id: u32, per_image: usize) -> usize {
    ids.iter()
        .map(|&id| if id == image_id { per_image } else { 1 })
        .sum()
}

/// Supervised labels at expanded positions `1..max_len` (media positions are −100; the
/// first position is never a target of the shifted loss).
fn expanded_prefix_labels(
    ids: &[u32],
    labels: &[i64],
    image_id: u32,
    per_image: usize,
    max_len: usize,
) -> usize {
    let mut pos = 0usize;
    let mut count = 0usize;
    for (&id, &label) in ids.iter().zip(labels) {
        if pos >= max_len {
            break;
        }
        if id == image_id {
            pos += per_image;
        } else {
            if pos >= 1 && label != IGNORE_INDEX {
                count += 1;
            }
            pos += 1;
        }
    }
    count
}

/// Keeps the first `keep` tiles and shortens the per-image counts to match.
fn truncate_tiles(pixels: &mut PixelValues, per_image: &mut Vec<usize>, keep: usize) {
    let per_tile = 3 * pixels.image_size * pixels.image_size;
    pixels.data.truncate(keep * per_tile);
    pixels.n_tiles = keep;
    let mut left = keep;
    for n in per_image.iter_mut() {
        let kept = (*n).min(left);
        left -= kept;
        *n = kept;
    }
    while per_image.last() == Some(&0) {
        per_image.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_tokens_skip_position_zero_and_the_cut() {
        // ids: text, image, text, text; per_image 3 → positions 0, 1-3, 4, 5.
        let ids = [1, 9, 2, 3];
        let labels = [5, IGNORE_INDEX, 2, 3];
        assert_eq!(expanded_prefix_labels(&ids, &labels, 9, 3, 100), 2);
        assert_eq!(expanded_prefix_labels(&ids, &labels, 9, 3, 5), 1);
        assert_eq!(expanded_positions(&ids, 9, 3), 6);
    }

    #[test]
    fn tiles_follow_the_kept_images() {
        let mut px = PixelValues {
            data: vec![0.0; 5 * 3 * 4],
            n_tiles: 5,
            image_size: 2,
        };
        let mut per = vec![3, 2];
        truncate_tiles(&mut px, &mut per, 3);
        assert_eq!((px.n_tiles, px.data.len(), per), (3, 36, vec![3]));
    }
}
