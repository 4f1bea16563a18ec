//! `NvilaModel`: the whole NVILA-Lite model (SigLIP tower + projector + Qwen2 + processor) loaded
//! from a checkpoint folder, with VILA's splicing of image features into the text embeddings.
//!
//! - Splicing ([`NvilaModel::embed_inputs`]) is `llava/model/llava_arch.py::
//!   LlavaMetaForCausalLM._embed`: every id is embedded, then each `<image>` id is replaced by the
//!   next tile's encoder output, which `llava/model/encoders/image/basic.py::BasicImageEncoder`
//!   builds as the projected features followed by the embedding of the tokenized `"\n"`
//!   (`end_tokens="\n"`, no start tokens); those positions get label −100 (`IGNORE_INDEX`).
//!   A leftover tile or a missing one is an error (VILA: "Not all image embeddings are
//!   consumed!"). With labels (the training path) the spliced sequence is truncated to
//!   `model_max_length` (`__truncate_sequence`, applied only when training).
//! - [`NvilaModel::score`] follows the training path (`llava/data/base.py`: under `dynamic` every
//!   image is tiled) and reports the log-probabilities the causal-LM loss sees (HF
//!   `ForCausalLMLoss`: position t−1 predicts label t, f32 logits).
//! - [`NvilaModel::prepare_generation`] follows the inference path
//!   (`LlavaMetaForCausalLM.generate_content`: one image is tiled, several are each resized to one
//!   tile; the prompt ends with the generation prompt `<|im_start|>assistant\n`).
//!
//! VILA resizes the LLM's embeddings and `lm_head` to `len(tokenizer)` at load
//! (`llava/model/builder.py::load_pretrained_model`, and `smart_tokenizer_and_embedding_resize`
//! in `llava/train/train.py`): a tokenizer larger than the checkpoint's `vocab_size` is refused
//! here, and a smaller one limits the distribution to its first `len(tokenizer)` logits
//! ([`NvilaModel::vocab_len`]).

use std::borrow::Cow;
use std::path::Path;

use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use image::RgbImage;
use serde::Serialize;

use crate::config::{CheckpointLayout, NvilaConfig};
use crate::error::ModelError;
use crate::processor::{
    GenerationInput, IGNORE_INDEX, ImageAspectRatio, PixelValues, Processor, ProcessorConfig, Role,
    SystemPrompt, TrainingSample, Turn,
};
use crate::projector::Projector;
use crate::text::{Projection, Qwen2ForCausalLM};
use crate::vision::SiglipVisionTower;
use burn::nn::Linear;

/// `BasicImageEncoder`'s `end_tokens` (`llava/model/encoders/image/basic.py`).
pub const IMAGE_END_TOKENS: &str = "\n";

/// VILA's module path of the LLM (`LlavaLlamaModel.llm`), prefixing its projections' paths.
pub const LLM_PATH: &str = "llm.";
/// VILA's module path of the tower's transformer (`LlavaLlamaModel.vision_tower` → HF
/// `SiglipVisionModel` → `vision_model` in transformers 4.46, VILA's pin).
pub const TOWER_PATH: &str = "vision_tower.vision_tower.vision_model.";

/// The whole NVILA model; `P` is the projection type of the LLM's decoder and the vision tower's
/// encoder (burn's `Linear` as loaded, or an adapter wrapper after
/// [`NvilaModel::map_projections`]).
#[derive(Debug)]
pub struct NvilaModel<P: Projection = Linear> {
    /// Qwen2 (`llm/`).
    pub llm: Qwen2ForCausalLM<P>,
    /// SigLIP cut at `mm_vision_select_layer` (`vision_tower/`).
    pub vision_tower: SiglipVisionTower<P>,
    /// The multimodal projector (`mm_projector/`).
    pub mm_projector: Projector,
    /// Tokenizer, chat template, tiling (configured from the top-level config).
    pub processor: Processor,
    /// The top-level `config.json`.
    pub config: NvilaConfig,
    /// The checkpoint folders.
    pub layout: CheckpointLayout,
    /// Token ids of [`IMAGE_END_TOKENS`], appended (embedded) after every tile's features.
    pub image_end_ids: Vec<u32>,
    device: Device,
    vocab_len: usize,
}

/// Input embeddings with media spliced in.
#[derive(Debug, Clone)]
pub struct Spliced {
    /// `[1, S, hidden]`, in the LLM's dtype.
    pub embeds: Tensor<3>,
    /// Labels after expansion (media positions −100), when labels were given; same length `S`.
    pub labels: Option<Vec<i64>>,
}

/// Log-probabilities of the supervised tokens of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreOutput {
    /// The supervised tokens (labels ≠ −100), in order.
    pub token_ids: Vec<u32>,
    /// `log p(token_t | tokens_<t, images)` for each, from f32 log-softmax.
    pub logprobs: Vec<f32>,
    /// Sum of `logprobs` (accumulated in f64).
    pub sum_logprob: f64,
}

impl ScoreOutput {
    /// The token-mean cross-entropy (`ForCausalLMLoss` with `num_items_in_batch` = the count).
    pub fn mean_loss(&self) -> f64 {
        -self.sum_logprob / self.logprobs.len().max(1) as f64
    }
}

/// The processor settings the checkpoint asks for: the tower's tile size, the top-level
/// `min_tiles` / `max_tiles` / `image_aspect_ratio`, the tokenizer's `model_max_length`, and
/// Pillow ≤ 12's resize pass order.
pub fn processor_config_for(
    config: &NvilaConfig,
    image_size: usize,
    config_path: &Path,
) -> Result<ProcessorConfig, ModelError> {
    let bad = |message: String| ModelError::Config {
        path: config_path.to_path_buf(),
        message,
    };
    let image_aspect_ratio = match config.image_aspect_ratio.as_str() {
        "dynamic" => ImageAspectRatio::Dynamic,
        "resize" => ImageAspectRatio::Resize,
        other => {
            return Err(bad(format!(
                "image_aspect_ratio {other:?} is not supported (dynamic, resize)"
            )));
        }
    };
    let to_u32 = |v: usize, what: &str| {
        u32::try_from(v).map_err(|_| bad(format!("{what} {v} is too large")))
    };
    Ok(ProcessorConfig {
        image_size: to_u32(image_size, "vision tower image_size")?,
        min_tiles: to_u32(config.min_tiles, "min_tiles")?,
        max_tiles: to_u32(config.max_tiles, "max_tiles")?,
        image_aspect_ratio,
        model_max_length: None,
        ..ProcessorConfig::nvila_lite()
    })
}

impl NvilaModel {
    /// Loads a checkpoint folder (top-level `config.json`, `llm/`, `vision_tower/`,
    /// `mm_projector/`) on `device`, converting weights to `dtype` (`None`: each file's dtype),
    /// with the processor the checkpoint's config describes.
    pub fn from_checkpoint(
        root: &Path,
        device: &Device,
        dtype: Option<DType>,
    ) -> Result<NvilaModel, ModelError> {
        Self::from_checkpoint_with(root, device, dtype, None)
    }

    /// [`Self::from_checkpoint`] with the processor settings replaced by `processor` (its
    /// `image_size` must still be the vision tower's).
    pub fn from_checkpoint_with(
        root: &Path,
        device: &Device,
        dtype: Option<DType>,
        processor: Option<ProcessorConfig>,
    ) -> Result<NvilaModel, ModelError> {
        let layout = CheckpointLayout::open(root)?;
        let config = layout.config.clone();
        let config_path = layout.root.join("config.json");

        let vision_tower = SiglipVisionTower::from_pretrained(
            &layout.vision_tower_dir,
            device,
            dtype,
            config.mm_vision_select_layer,
        )?;
        let llm = Qwen2ForCausalLM::from_pretrained(&layout.llm_dir, device, dtype)?;
        let mm_projector = Projector::from_pretrained(
            &layout.mm_projector_dir,
            device,
            dtype,
            vision_tower.hidden_size,
            llm.config.hidden_size,
        )?;
        if mm_projector.tokens_out(vision_tower.num_patches).is_none() {
            return Err(ModelError::Config {
                path: layout.vision_tower_dir.join("config.json"),
                message: format!(
                    "{} patches per tile are not a square grid the projector can merge",
                    vision_tower.num_patches
                ),
            });
        }

        let processor_config = match processor {
            Some(p) => {
                if p.image_size as usize != vision_tower.image_size {
                    return Err(ModelError::Config {
                        path: layout.vision_tower_dir.join("config.json"),
                        message: format!(
                            "processor image_size {} differs from the vision tower's {}",
                            p.image_size, vision_tower.image_size
                        ),
                    });
                }
                p
            }
            None => processor_config_for(&config, vision_tower.image_size, &config_path)?,
        };
        // Tokenizer::load refuses a tokenizer without `<image>` (naming the file).
        let processor = Processor::load(&layout.llm_dir, processor_config)?;
        let tokenizer = processor.tokenizer();
        let vocab_len = tokenizer.vocab_size();
        let vocab_size = llm.config.vocab_size;
        if vocab_len > vocab_size {
            return Err(ModelError::Config {
                path: layout.llm_dir.join("config.json"),
                message: format!(
                    "the tokenizer has {vocab_len} tokens but the LLM's vocab_size is {vocab_size}: \
                     VILA resizes the embeddings to len(tokenizer) before saving, so this tokenizer \
                     does not belong to these weights"
                ),
            });
        }
        let image_end_ids = tokenizer.encode(IMAGE_END_TOKENS)?;
        Ok(NvilaModel {
            llm,
            vision_tower,
            mm_projector,
            processor,
            config,
            layout,
            image_end_ids,
            device: device.clone(),
            vocab_len,
        })
    }
}

impl<P: Projection> NvilaModel<P> {
    /// Replaces each projection of the LLM's decoder and of the vision tower's encoder by
    /// `f(path, projection)`, `path` being VILA's module path
    /// (`llm.model.layers.0.self_attn.q_proj`,
    /// `vision_tower.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj`), the names
    /// PEFT's `target_modules` match against.
    pub fn map_projections<Q: Projection, E>(
        self,
        mut f: impl FnMut(&str, P) -> Result<Q, E>,
    ) -> Result<NvilaModel<Q>, E> {
        let llm = self
            .llm
            .map_projections(|path, p| f(&format!("{LLM_PATH}{path}"), p))?;
        let vision_tower = self
            .vision_tower
            .map_projections(&mut |path, p| f(&format!("{TOWER_PATH}{path}"), p))?;
        Ok(NvilaModel {
            llm,
            vision_tower,
            mm_projector: self.mm_projector,
            processor: self.processor,
            config: self.config,
            layout: self.layout,
            image_end_ids: self.image_end_ids,
            device: self.device,
            vocab_len: self.vocab_len,
        })
    }

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of the LLM's weights (spliced embeddings are in it).
    pub fn llm_dtype(&self) -> DType {
        self.llm.model.embed_tokens.weight.val().dtype()
    }

    /// Rows of the output distribution: `len(tokenizer)`, which VILA resizes the LLM to
    /// (≤ `vocab_size`; logits beyond it are not part of VILA's model).
    pub fn vocab_len(&self) -> usize {
        self.vocab_len
    }

    /// Projected features of tiles (`LlavaMetaModel.encode_images`: vision tower, then
    /// projector), cast to the LLM's dtype.
    ///
    /// # Shapes
    /// - returns: `[n_tiles, tokens_out, hidden]` (121 tokens per 448-px tile for NVILA-Lite)
    pub fn encode_images(&self, pixels: &PixelValues) -> Result<Tensor<3>, ModelError> {
        let shape = pixels.shape();
        let expected: usize = shape.iter().product();
        if pixels.n_tiles == 0 || pixels.data.len() != expected {
            return Err(ModelError::Input(format!(
                "pixel values hold {} floats for shape {shape:?} (need n_tiles >= 1 and {expected})",
                pixels.data.len()
            )));
        }
        let tiles: Tensor<4> = Tensor::from_data(
            TensorData::new(pixels.data.clone(), shape),
            (&self.device, DType::F32),
        );
        let features = self.vision_tower.forward(tiles)?;
        let projected = self.mm_projector.forward(features)?;
        Ok(projected.cast(self.llm_dtype()))
    }

    /// VILA's `_embed` for one unpadded sequence: embeds `input_ids`, replaces the k-th
    /// `<image>` id by tile k's projected features followed by the embedded `"\n"` end token,
    /// and (when `labels` are given) expands the labels with −100 over media positions and
    /// truncates to `model_max_length` as training does.
    pub fn embed_inputs(
        &self,
        input_ids: &[u32],
        pixels: Option<&PixelValues>,
        labels: Option<&[i64]>,
    ) -> Result<Spliced, ModelError> {
        if input_ids.is_empty() {
            return Err(ModelError::Input("no input ids".into()));
        }
        if let Some(l) = labels
            && l.len() != input_ids.len()
        {
            return Err(ModelError::Input(format!(
                "{} labels for {} input ids",
                l.len(),
                input_ids.len()
            )));
        }
        let image_id = self.processor.tokenizer().image_token_id();
        let n_images = input_ids.iter().filter(|&&id| id == image_id).count();
        let n_tiles = pixels.map_or(0, |p| p.n_tiles);
        if n_images != n_tiles {
            return Err(ModelError::Input(format!(
                "{n_images} `<image>` tokens but {n_tiles} image tiles (each `<image>` id takes \
                 the next tile)"
            )));
        }

        let ids: Vec<i64> = input_ids.iter().map(|&id| i64::from(id)).collect();
        let text = self.llm.embed(Tensor::from_data(
            TensorData::new(ids, [1, input_ids.len()]),
            &self.device,
        ))?;
        let media = match pixels {
            Some(p) if n_tiles > 0 => {
                let projected = self.encode_images(p)?;
                let end = if self.image_end_ids.is_empty() {
                    None
                } else {
                    let end_ids: Vec<i64> =
                        self.image_end_ids.iter().map(|&id| i64::from(id)).collect();
                    let n = end_ids.len();
                    Some(self.llm.embed(Tensor::from_data(
                        TensorData::new(end_ids, [1, n]),
                        &self.device,
                    ))?)
                };
                Some((projected, end))
            }
            _ => None,
        };

        let mut pieces: Vec<Tensor<3>> = Vec::new();
        let mut out_labels: Vec<i64> = Vec::with_capacity(input_ids.len());
        let mut tile = 0;
        let mut pos = 0;
        while pos < input_ids.len() {
            if input_ids[pos] == image_id {
                let Some((projected, end)) = &media else {
                    // Unreachable: n_images == n_tiles > 0 implies media.
                    return Err(ModelError::Input(
                        "`<image>` token without pixel values".into(),
                    ));
                };
                let feats = projected.clone().narrow(0, tile, 1);
                let mut len = feats.dims()[1];
                pieces.push(feats);
                if let Some(end) = end {
                    len += end.dims()[1];
                    pieces.push(end.clone());
                }
                out_labels.extend(std::iter::repeat_n(IGNORE_INDEX, len));
                tile += 1;
                pos += 1;
            } else {
                let start = pos;
                while pos < input_ids.len() && input_ids[pos] != image_id {
                    pos += 1;
                }
                pieces.push(text.clone().narrow(1, start, pos - start));
                match labels {
                    Some(l) => out_labels.extend_from_slice(&l[start..pos]),
                    None => out_labels.extend(std::iter::repeat_n(IGNORE_INDEX, pos - start)),
                }
            }
        }
        let mut embeds = if pieces.len() == 1 {
            pieces.remove(0)
        } else {
            Tensor::cat(pieces, 1)
        };
        // `__truncate_sequence`: only while training, i.e. on the labelled path here.
        let max_len = self.processor.model_max_length();
        if labels.is_some() && out_labels.len() > max_len {
            tracing::warn!(
                len = out_labels.len(),
                max = max_len,
                "truncating spliced sequence to model_max_length"
            );
            embeds = embeds.narrow(1, 0, max_len);
            out_labels.truncate(max_len);
        }
        Ok(Spliced {
            embeds,
            labels: labels.map(|_| out_labels),
        })
    }

    /// Spliced embeddings of a generation input (no labels, no truncation).
    pub fn embed_generation_input(&self, input: &GenerationInput) -> Result<Tensor<3>, ModelError> {
        let pixels = (input.pixel_values.n_tiles > 0).then_some(&input.pixel_values);
        Ok(self.embed_inputs(&input.input_ids, pixels, None)?.embeds)
    }

    /// Prompt embeddings for generation, VILA's inference path (`generate_content`): one image
    /// is tiled (`"<image>\n"` per tile), several are each resized to one tile; default system
    /// prompt; ends with `<|im_start|>assistant\n`.
    ///
    /// # Shapes
    /// - returns: `[1, S, hidden]` in the LLM's dtype
    pub fn prepare_generation(
        &self,
        prompt: &str,
        images: &[RgbImage],
    ) -> Result<Tensor<3>, ModelError> {
        let input = self.processor.process_generation(prompt, images)?;
        self.embed_generation_input(&input)
    }

    /// The processor, with `aspect` replacing the configured `image_aspect_ratio` if given.
    fn processor_for(
        &self,
        aspect: Option<ImageAspectRatio>,
    ) -> Result<Cow<'_, Processor>, ModelError> {
        match aspect {
            Some(a) if a != self.processor.config().image_aspect_ratio => {
                let config = ProcessorConfig {
                    image_aspect_ratio: a,
                    model_max_length: Some(self.processor.model_max_length()),
                    ..self.processor.config().clone()
                };
                Ok(Cow::Owned(Processor::new(
                    self.processor.tokenizer().clone(),
                    config,
                )?))
            }
            _ => Ok(Cow::Borrowed(&self.processor)),
        }
    }

    /// Log-probabilities of `response` given `prompt` and `images`, on VILA's training path: the
    /// conversation `[human: prompt, gpt: response]` goes through
    /// [`Processor::process_training`] (media tags removed, images first; under `dynamic` every
    /// image is tiled), is spliced, and the supervised tokens (the response and its
    /// `<|im_end|>`, per VILA's label masking) are scored as the causal-LM loss sees them.
    pub fn score(
        &self,
        prompt: &str,
        images: &[RgbImage],
        response: &str,
        aspect: Option<ImageAspectRatio>,
    ) -> Result<ScoreOutput, ModelError> {
        let processor = self.processor_for(aspect)?;
        let turns = [
            Turn::new(Role::Human, prompt),
            Turn::new(Role::Gpt, response),
        ];
        let sample = processor.process_training(&turns, images, &SystemPrompt::Default)?;
        self.score_sample(&sample)
    }

    /// [`Self::score`] for a prepared training sample.
    pub fn score_sample(&self, sample: &TrainingSample) -> Result<ScoreOutput, ModelError> {
        let pixels = (sample.pixel_values.n_tiles > 0).then_some(&sample.pixel_values);
        let spliced =
            self.embed_inputs(&sample.input_ids, pixels, Some(sample.labels.as_slice()))?;
        let labels = spliced.labels.unwrap_or_default();
        // ForCausalLMLoss: logits[t - 1] predict labels[t].
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        for (t, &label) in labels.iter().enumerate().skip(1) {
            if label != IGNORE_INDEX {
                let id = u32::try_from(label)
                    .ok()
                    .filter(|&id| (id as usize) < self.vocab_len)
                    .ok_or_else(|| {
                        ModelError::Input(format!(
                            "label {label} at position {t} is outside the vocabulary 0..{}",
                            self.vocab_len
                        ))
                    })?;
                positions.push((t - 1) as i64);
                targets.push(id);
            }
        }
        if targets.is_empty() {
            return Err(ModelError::Input(format!(
                "no supervised tokens left to score (the sequence is {} positions after image \
                 expansion; model_max_length {} may have truncated the response away)",
                labels.len(),
                self.processor.model_max_length()
            )));
        }
        let hidden = self.llm.forward(spliced.embeds, None, None)?;
        let n = positions.len();
        let selected = hidden.select(
            1,
            Tensor::<1, Int>::from_data(TensorData::new(positions, [n]), &self.device),
        );
        let mut logits = self.llm.logits(selected).cast(DType::F32);
        if logits.dims()[2] > self.vocab_len {
            logits = logits.narrow(2, 0, self.vocab_len);
        }
        let logp = log_softmax(logits, 2);
        let index: Vec<i64> = targets.iter().map(|&id| i64::from(id)).collect();
        let picked = logp.gather(
            2,
            Tensor::<3, Int>::from_data(TensorData::new(index, [1, n, 1]), &self.device),
        );
        let logprobs = picked
            .try_into_data()
            .map_err(|e| ModelError::Input(format!("log-probs could not be read: {e:?}")))?
            .try_into_vec::<f32>()
            .map_err(|e| ModelError::Input(format!("log-probs could not be read: {e:?}")))?;
        let sum_logprob = logprobs.iter().map(|&v| f64::from(v)).sum();
        Ok(ScoreOutput {
            token_ids: targets,
            logprobs,
            sum_logprob,
        })
    }

    /// Token-mean cross-entropy over the supervised tokens of `sample` (f32 logits), the
    /// per-sample value of VILA's training loss.
    pub fn loss(&self, sample: &TrainingSample) -> Result<f32, ModelError> {
        Ok(self.score_sample(sample)?.mean_loss() as f32)
    }
}
