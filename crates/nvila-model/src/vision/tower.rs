//! The vision tower as VILA uses it: SigLIP embeddings and the encoder layers in front of
//! `hidden_states[mm_vision_select_layer]`, returning that state for every token.
//!
//! VILA (`llava/model/multimodal_encoder/vision_encoder.py::VisionTower`) runs the full HF model
//! and indexes `hidden_states`; this port stops where the selected state is produced, so for
//! NVILA (`-2`) the last encoder layer and `post_layernorm` are neither built nor run.

use std::path::Path;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{DType, Device, Tensor};

use crate::error::ModelError;
use crate::text::Projection;
use crate::vision::config::SiglipVisionConfig;
use crate::vision::embeddings::SiglipVisionEmbeddings;
use crate::vision::encoder_layer::SiglipEncoderLayer;
use crate::weights::Weights;

/// NVILA's `mm_vision_select_layer` (the top-level `config.json`; also VILA's `VisionTower`
/// default): the output of the second-to-last encoder layer.
pub const DEFAULT_SELECT_LAYER: isize = -2;

/// `vision_model.encoder`, truncated to the layers the selected hidden state needs.
#[derive(Module, Debug)]
pub struct SiglipEncoder<P: Projection = Linear> {
    /// `layers[i]` is `vision_model.encoder.layers.i`, for `i < n_layers_run`.
    pub layers: Vec<SiglipEncoderLayer<P>>,
}

/// SigLIP up to `hidden_states[select_layer]`. Fields are relative to the checkpoint's
/// `vision_model.` prefix ([`key_prefix`]).
#[derive(Module, Debug)]
pub struct SiglipVisionTower<P: Projection = Linear> {
    /// Patch + position embeddings (`hidden_states[0]`).
    pub embeddings: SiglipVisionEmbeddings,
    /// The first `n_layers_run` encoder layers.
    pub encoder: SiglipEncoder<P>,
    /// Input channels the tower expects.
    pub num_channels: usize,
    /// Input tile side in pixels.
    pub image_size: usize,
    /// Output width `C`.
    pub hidden_size: usize,
    /// Output tokens per tile.
    pub num_patches: usize,
}

impl SiglipVisionTower {
    /// Opens a `vision_tower/` folder (`config.json` + `model.safetensors`) on `device`,
    /// converting weights to `dtype` (`None`: the file's), and loads the tower.
    pub fn from_pretrained(
        dir: &Path,
        device: &Device,
        dtype: Option<DType>,
        select_layer: isize,
    ) -> Result<SiglipVisionTower, ModelError> {
        let config = SiglipVisionConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::open(dir, device, dtype)?;
        Self::load(&weights, &config, select_layer)
    }

    /// Loads the tower from `weights`, a view of the `vision_tower/` folder, keeping
    /// `hidden_states[select_layer]` (Python indexing over the `num_hidden_layers + 1` states;
    /// NVILA: [`DEFAULT_SELECT_LAYER`]). Keys are `vision_model.*` as VILA writes them (see
    /// [`key_prefix`]), or unprefixed for a tower re-saved by transformers 5.
    ///
    /// Finishes the checkpoint: any key left over is an error, except the ones VILA never uses,
    /// see [`unused_by_design`].
    pub fn load(
        weights: &Weights,
        config: &SiglipVisionConfig,
        select_layer: isize,
    ) -> Result<SiglipVisionTower, ModelError> {
        let config_path = weights.dir().join("config.json");
        config.validate(&config_path)?;
        let n_layers_run = config
            .layers_for_select_layer(select_layer)
            .ok_or_else(|| ModelError::Config {
                path: config_path.clone(),
                message: format!(
                    "mm_vision_select_layer {select_layer} is out of range: the tower has {} \
                     layers, hence {} hidden states (valid: {}..={})",
                    config.num_hidden_layers,
                    config.num_hidden_layers + 1,
                    -(config.num_hidden_layers as isize) - 1,
                    config.num_hidden_layers
                ),
            })?;

        let prefix = key_prefix(weights);
        let model = weights.pp(prefix);
        let embeddings = SiglipVisionEmbeddings::load(&model.pp("embeddings"), config)?;
        let layers_root = model.pp("encoder").pp("layers");
        let layers = (0..n_layers_run)
            .map(|i| SiglipEncoderLayer::load(&layers_root.pp(i.to_string()), config))
            .collect::<Result<Vec<_>, _>>()?;
        weights.finish(|key| unused_by_design(key, prefix, config, n_layers_run))?;

        Ok(SiglipVisionTower {
            embeddings,
            encoder: SiglipEncoder { layers },
            num_channels: config.num_channels,
            image_size: config.image_size,
            hidden_size: config.hidden_size,
            num_patches: config.num_patches(),
        })
    }
}

impl<P: Projection> SiglipVisionTower<P> {
    /// Every projection of the encoder with its path under `vision_model`
    /// (`encoder.layers.0.self_attn.q_proj`).
    pub fn projections(&self) -> Vec<(String, &P)> {
        let mut out = Vec::new();
        for (i, layer) in self.encoder.layers.iter().enumerate() {
            for (name, p) in layer.projections() {
                out.push((format!("encoder.layers.{i}.{name}"), p));
            }
        }
        out
    }

    /// Replaces each projection by `f(path, projection)`, `path` as in [`Self::projections`].
    pub fn map_projections<Q: Projection, E>(
        self,
        f: &mut impl FnMut(&str, P) -> Result<Q, E>,
    ) -> Result<SiglipVisionTower<Q>, E> {
        let layers = self
            .encoder
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, layer)| layer.map_projections(&format!("encoder.layers.{i}"), f))
            .collect::<Result<Vec<_>, E>>()?;
        Ok(SiglipVisionTower {
            embeddings: self.embeddings,
            encoder: SiglipEncoder { layers },
            num_channels: self.num_channels,
            image_size: self.image_size,
            hidden_size: self.hidden_size,
            num_patches: self.num_patches,
        })
    }

    /// Encoder layers this tower runs.
    pub fn n_layers_run(&self) -> usize {
        self.encoder.layers.len()
    }

    /// Tiles to `hidden_states[select_layer]`, all tokens kept (`cls_patch`).
    ///
    /// Pixels are cast to the weights' dtype first, as HF's `SiglipVisionEmbeddings.forward`
    /// does; the features come back in that dtype.
    ///
    /// # Shapes
    /// - `pixels`: `[n_tiles, num_channels, image_size, image_size]`, normalised
    /// - returns: `[n_tiles, num_patches, C]`, tokens row-major over the patch grid
    pub fn forward(&self, pixels: Tensor<4>) -> Result<Tensor<3>, ModelError> {
        let dims = pixels.dims();
        let [n_tiles, channels, height, width] = dims;
        if n_tiles == 0
            || channels != self.num_channels
            || height != self.image_size
            || width != self.image_size
        {
            return Err(ModelError::Input(format!(
                "vision tower: pixel tensor has shape {dims:?}, expected [n_tiles >= 1, {}, {}, {}]",
                self.num_channels, self.image_size, self.image_size
            )));
        }
        let dtype = self.embeddings.patch_embedding.weight.val().dtype();
        let mut hidden = self.embeddings.forward(pixels.cast(dtype));
        for layer in &self.encoder.layers {
            hidden = layer.forward(hidden);
        }
        Ok(hidden)
    }
}

/// The prefix of the tower's keys in `weights`. VILA's `LlavaMetaForCausalLM.save_pretrained`
/// (`llava/model/llava_arch.py`) strips `vision_tower.vision_tower.` from the VLM's state dict
/// and calls the HF `SiglipVisionModel.save_pretrained`; in transformers 4.46 (VILA's pin, and
/// VILA's vendored `multimodal_encoder/siglip/modeling_siglip.py`) that model holds
/// `self.vision_model`, so every key starts with `vision_model.`. transformers 5 flattened the
/// model and saves without the prefix (reading both); such a folder is accepted too.
pub fn key_prefix(weights: &Weights) -> &'static str {
    let probe = "embeddings.patch_embedding.weight";
    if !weights.contains(&format!("vision_model.{probe}")) && weights.contains(probe) {
        ""
    } else {
        "vision_model"
    }
}

/// Checkpoint keys the tower leaves unused on purpose, all of them computed only after the
/// selected hidden state in HF's forward (`SiglipVisionTransformer.forward`), so VILA's
/// `feature_select` discards their effect (shown with `prefix` = `vision_model`):
/// - `vision_model.encoder.layers.{i}.*` for `n_layers_run <= i < num_hidden_layers` (NVILA:
///   layer 26, the last);
/// - `vision_model.post_layernorm.*`, applied to the last layer's output only;
/// - `vision_model.head.*`, the attention-pooling head, if the config declares one
///   (`vision_use_head`; NVILA's checkpoint has none).
pub fn unused_by_design(
    key: &str,
    prefix: &str,
    config: &SiglipVisionConfig,
    n_layers_run: usize,
) -> bool {
    let rest = if prefix.is_empty() {
        Some(key)
    } else {
        key.strip_prefix(prefix).and_then(|k| k.strip_prefix('.'))
    };
    let Some(rest) = rest else {
        return false;
    };
    if rest.starts_with("post_layernorm.") {
        return true;
    }
    if rest.starts_with("head.") {
        return config.vision_use_head;
    }
    let Some((index, _)) = rest
        .strip_prefix("encoder.layers.")
        .and_then(|layer| layer.split_once('.'))
    else {
        return false;
    };
    index
        .parse::<usize>()
        .is_ok_and(|i| n_layers_run <= i && i < config.num_hidden_layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_later_layers_post_layernorm_and_declared_head_are_unused_by_design() {
        let mut config: SiglipVisionConfig =
            serde_json::from_str(r#"{"num_hidden_layers": 3}"#).unwrap();
        config.vision_use_head = false;
        let allowed = |key: &str| unused_by_design(key, "vision_model", &config, 2);
        assert!(allowed("vision_model.encoder.layers.2.mlp.fc1.weight"));
        assert!(allowed("vision_model.post_layernorm.weight"));
        assert!(!allowed("vision_model.encoder.layers.1.mlp.fc1.weight"));
        assert!(!allowed("vision_model.encoder.layers.3.mlp.fc1.weight"));
        assert!(!allowed("vision_model.encoder.layers.12.mlp.fc1.weight"));
        assert!(!allowed("vision_model.head.probe"));
        assert!(!allowed("post_layernorm.weight"));
        assert!(!allowed("vision_model.embeddings.patch_embedding.weight"));
        config.vision_use_head = true;
        assert!(unused_by_design(
            "vision_model.head.probe",
            "vision_model",
            &config,
            2
        ));
        assert!(unused_by_design("post_layernorm.bias", "", &config, 2));
        assert!(!unused_by_design(
            "encoder.layers.1.mlp.fc1.bias",
            "",
            &config,
            2
        ));
    }
}
