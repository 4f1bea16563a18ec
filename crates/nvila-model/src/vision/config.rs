//! `SiglipVisionConfig`: the architecture fields of HF `vision_tower/config.json`
//! (`transformers/models/siglip/configuration_siglip.py`), with field names as HF writes them.
//!
//! transformers saves configs as a diff against the class defaults (`to_diff_dict`), so a key
//! equal to its default is absent from the file: every missing field takes the transformers
//! default (the same in 4.46 and 5.24). Unknown keys (`dtype`, `architectures`, ...) are ignored.
//! What this port does not compute (another activation) is refused with an error naming the
//! file rather than computed differently.

use std::path::Path;

use serde::Deserialize;

use crate::error::ModelError;

/// The only activation implemented: `gelu_pytorch_tanh`, the tanh approximation of GELU
/// (`transformers/activations.py::PytorchGELUTanh`), which every SigLIP checkpoint uses.
pub const SUPPORTED_HIDDEN_ACT: &str = "gelu_pytorch_tanh";

/// The SigLIP vision architecture. Build it with [`SiglipVisionConfig::from_file`] (which
/// validates) or by hand (then [`SiglipVisionConfig::validate`] runs at load).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SiglipVisionConfig {
    /// Model width `C` (1152 for so400m).
    #[serde(default = "default_hidden_size")]
    pub hidden_size: usize,
    /// Width of the MLP (4304 for so400m).
    #[serde(default = "default_intermediate_size")]
    pub intermediate_size: usize,
    /// Encoder layers in the checkpoint (27 for so400m).
    #[serde(default = "default_num_hidden_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads; divides `hidden_size`.
    #[serde(default = "default_num_attention_heads")]
    pub num_attention_heads: usize,
    /// Input channels (3, RGB).
    #[serde(default = "default_num_channels")]
    pub num_channels: usize,
    /// Side of the square input tile in pixels (448 for NVILA).
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    /// Side of a patch in pixels (14): the patch embedding's kernel and stride.
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    /// Epsilon of every LayerNorm in the tower (1e-6).
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// MLP activation; only [`SUPPORTED_HIDDEN_ACT`] is accepted.
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Whether the checkpoint has the attention-pooling `head` (NVILA: false). VILA never runs
    /// it; its weights, when present, are left unused. transformers 4.46 treats a missing key as
    /// true (`SiglipVisionTransformer.__init__`), as 5.24's default does.
    #[serde(default = "default_vision_use_head")]
    pub vision_use_head: bool,
}

fn default_hidden_size() -> usize {
    768
}
fn default_intermediate_size() -> usize {
    3072
}
fn default_num_hidden_layers() -> usize {
    12
}
fn default_num_attention_heads() -> usize {
    12
}
fn default_num_channels() -> usize {
    3
}
fn default_image_size() -> usize {
    224
}
fn default_patch_size() -> usize {
    16
}
fn default_layer_norm_eps() -> f64 {
    1e-6
}
fn default_hidden_act() -> String {
    SUPPORTED_HIDDEN_ACT.into()
}
fn default_vision_use_head() -> bool {
    true
}

impl SiglipVisionConfig {
    /// Reads and validates `path` (a `vision_tower/config.json`).
    pub fn from_file(path: &Path) -> Result<SiglipVisionConfig, ModelError> {
        let text = crate::error::read_text(path, "SigLIP vision tower config.json")?;
        Self::from_json(&text, path)
    }

    /// Parses and validates the text of a `config.json`; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<SiglipVisionConfig, ModelError> {
        let config: SiglipVisionConfig =
            serde_json::from_str(text).map_err(|e| ModelError::Json {
                path: path.to_path_buf(),
                message: format!("not a SigLIP vision config: {e}"),
            })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks what the port relies on; `path` names the config in the error.
    pub fn validate(&self, path: &Path) -> Result<(), ModelError> {
        let problem = if self.hidden_act != SUPPORTED_HIDDEN_ACT {
            Some(format!(
                "hidden_act {:?} is not supported (this port implements {SUPPORTED_HIDDEN_ACT:?}, \
                 the tanh-approximate GELU of SigLIP)",
                self.hidden_act
            ))
        } else if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            Some(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ))
        } else if self.patch_size == 0 || self.image_size < self.patch_size {
            Some(format!(
                "image_size {} holds no patch of patch_size {}",
                self.image_size, self.patch_size
            ))
        } else if self.hidden_size == 0 || self.intermediate_size == 0 || self.num_channels == 0 {
            Some("hidden_size, intermediate_size and num_channels must be positive".into())
        } else if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            Some(format!(
                "layer_norm_eps {} is not positive",
                self.layer_norm_eps
            ))
        } else {
            None
        };
        match problem {
            Some(message) => Err(ModelError::Config {
                path: path.to_path_buf(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// Patches per side of a tile: `image_size / patch_size`, rounded down as the valid
    /// convolution does.
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens per tile, `(image_size / patch_size)^2` (1024 for NVILA), the rows of
    /// `position_embedding`.
    pub fn num_patches(&self) -> usize {
        self.patches_per_side() * self.patches_per_side()
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// How many encoder layers produce `hidden_states[select_layer]`, indexed like a Python
    /// tuple of `num_hidden_layers + 1` states (0 = the embeddings, -1 = the last layer), or
    /// `None` if the index is out of range.
    pub fn layers_for_select_layer(&self, select_layer: isize) -> Option<usize> {
        let n_states = isize::try_from(self.num_hidden_layers)
            .ok()?
            .checked_add(1)?;
        if (-n_states..n_states).contains(&select_layer) {
            usize::try_from(select_layer.rem_euclid(n_states)).ok()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SiglipVisionConfig, ModelError> {
        SiglipVisionConfig::from_json(text, Path::new("vision_tower/config.json"))
    }

    #[test]
    fn missing_keys_take_transformers_defaults() {
        // An NVILA-style diff config: hidden_act and layer_norm_eps equal the defaults and are
        // therefore not written by `save_pretrained`.
        let config = parse(
            r#"{"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
                "num_attention_heads": 16, "image_size": 448, "patch_size": 14,
                "vision_use_head": false, "model_type": "siglip_vision_model"}"#,
        )
        .unwrap();
        assert_eq!(config.hidden_act, "gelu_pytorch_tanh");
        assert_eq!(config.layer_norm_eps, 1e-6);
        assert_eq!(config.num_channels, 3);
        assert_eq!(config.num_patches(), 1024);
        assert_eq!(config.head_dim(), 72);
        assert!(!config.vision_use_head);
    }

    #[test]
    fn select_layer_counts_layers_like_a_python_tuple() {
        let config = parse(r#"{"num_hidden_layers": 27}"#).unwrap();
        assert_eq!(config.layers_for_select_layer(-2), Some(26));
        assert_eq!(config.layers_for_select_layer(-1), Some(27));
        assert_eq!(config.layers_for_select_layer(-28), Some(0));
        assert_eq!(config.layers_for_select_layer(0), Some(0));
        assert_eq!(config.layers_for_select_layer(27), Some(27));
        assert_eq!(config.layers_for_select_layer(28), None);
        assert_eq!(config.layers_for_select_layer(-29), None);
    }

    #[test]
    fn unsupported_activation_is_refused_naming_file_and_value() {
        let err = parse(r#"{"hidden_act": "quick_gelu"}"#).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ModelError::Config { .. }), "{message}");
        assert!(message.contains("vision_tower/config.json"), "{message}");
        assert!(message.contains("quick_gelu"), "{message}");
    }

    #[test]
    fn heads_must_divide_width() {
        let err = parse(r#"{"hidden_size": 30, "num_attention_heads": 4}"#).unwrap_err();
        assert!(err.to_string().contains("not divisible"), "{err}");
    }
}
