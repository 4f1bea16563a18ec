//! `Qwen2Config`: the architecture fields of HF `llm/config.json` (`Qwen2Config` in
//! `transformers/models/qwen2/configuration_qwen2.py`), with field names as HF writes them.
//!
//! Both config generations are read: transformers 4.x (the NVILA checkpoint, saved with 4.46)
//! writes `torch_dtype`, a top-level `rope_theta` and `rope_scaling`; transformers 5.x writes
//! `dtype` and `rope_parameters: {rope_type, rope_theta}`. Unknown keys are ignored. Anything this
//! port does not implement (another activation, RoPE scaling, sliding-window attention) is
//! refused with an error naming the file rather than computed differently.

use std::path::Path;

use burn::tensor::DType;
use serde::Deserialize;

use crate::error::ModelError;

/// The Qwen2 architecture, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Qwen2Config {
    /// Rows of `embed_tokens` and `lm_head`.
    pub vocab_size: usize,
    /// Model width `h`.
    pub hidden_size: usize,
    /// Width of the gated MLP.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA); divides `num_attention_heads`.
    pub num_key_value_heads: usize,
    /// Per-head width: `head_dim` if the config has it, else `hidden_size / num_attention_heads`
    /// (`Qwen2Attention.__init__`).
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base θ.
    pub rope_theta: f64,
    /// Longest context the checkpoint was trained for (informational: RoPE is not limited).
    pub max_position_embeddings: usize,
    /// Whether `lm_head` reuses `embed_tokens.weight` (then the checkpoint has no `lm_head`).
    pub tie_word_embeddings: bool,
    /// Always `silu` (checked at parse time).
    pub hidden_act: String,
    /// The checkpoint's dtype (`torch_dtype` / `dtype`), if stated.
    pub torch_dtype: Option<String>,
}

/// `config.json` as written; defaults are HF `Qwen2Config.__init__`'s.
#[derive(Deserialize)]
struct RawConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    /// HF: `if num_key_value_heads is None: num_key_value_heads = num_attention_heads`.
    #[serde(default)]
    num_key_value_heads: Option<usize>,
    #[serde(default)]
    head_dim: Option<usize>,
    #[serde(default = "default_rms_norm_eps")]
    rms_norm_eps: f64,
    /// transformers 4.x.
    #[serde(default)]
    rope_theta: Option<f64>,
    /// transformers 4.x; `null` or absent means plain RoPE.
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
    /// transformers 5.x: `{"rope_type": "default", "rope_theta": ...}`.
    #[serde(default)]
    rope_parameters: Option<RopeParameters>,
    #[serde(default = "default_max_position_embeddings")]
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default = "default_hidden_act")]
    hidden_act: String,
    #[serde(default, alias = "dtype")]
    torch_dtype: Option<String>,
    #[serde(default)]
    use_sliding_window: bool,
}

#[derive(Deserialize)]
struct RopeParameters {
    #[serde(default = "default_rope_type")]
    rope_type: String,
    #[serde(default)]
    rope_theta: Option<f64>,
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_max_position_embeddings() -> usize {
    32768
}
fn default_hidden_act() -> String {
    "silu".into()
}
fn default_rope_type() -> String {
    "default".into()
}
/// `Qwen2Config(rope_theta=10000.0)` in transformers 4.x.
const DEFAULT_ROPE_THETA: f64 = 10000.0;

impl Qwen2Config {
    /// Reads and validates `path` (an `llm/config.json`).
    pub fn from_file(path: &Path) -> Result<Qwen2Config, ModelError> {
        let text = crate::error::read_text(path, "Qwen2 config.json")?;
        Self::from_json(&text, path)
    }

    /// Parses and validates config JSON; `path` only names the source in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Qwen2Config, ModelError> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| ModelError::Json {
            path: path.to_path_buf(),
            message: format!("not a Qwen2 config: {e}"),
        })?;
        let bad = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            message,
        };
        if raw.hidden_act != "silu" {
            return Err(bad(format!(
                "hidden_act {:?} is not supported (only \"silu\")",
                raw.hidden_act
            )));
        }
        if raw.use_sliding_window {
            return Err(bad("use_sliding_window = true is not supported".into()));
        }
        if let Some(scaling) = raw.rope_scaling.as_ref().filter(|s| !s.is_null()) {
            let kind = scaling
                .get("rope_type")
                .or_else(|| scaling.get("type"))
                .and_then(|t| t.as_str());
            if kind != Some("default") {
                return Err(bad(format!(
                    "rope_scaling {scaling} is not supported (plain RoPE only)"
                )));
            }
        }
        let mut rope_theta = raw.rope_theta;
        if let Some(params) = &raw.rope_parameters {
            if params.rope_type != "default" {
                return Err(bad(format!(
                    "rope_parameters.rope_type {:?} is not supported (only \"default\")",
                    params.rope_type
                )));
            }
            rope_theta = params.rope_theta.or(rope_theta);
        }
        let rope_theta = rope_theta.unwrap_or(DEFAULT_ROPE_THETA);
        if !(rope_theta.is_finite() && rope_theta > 0.0) {
            return Err(bad(format!("rope_theta {rope_theta} must be positive")));
        }
        let num_key_value_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        if raw.num_attention_heads == 0 || num_key_value_heads == 0 {
            return Err(bad(
                "num_attention_heads and num_key_value_heads must be positive".into(),
            ));
        }
        if !raw.num_attention_heads.is_multiple_of(num_key_value_heads) {
            return Err(bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                raw.num_attention_heads, num_key_value_heads
            )));
        }
        let head_dim = match raw.head_dim {
            Some(d) => d,
            None if raw.hidden_size.is_multiple_of(raw.num_attention_heads) => {
                raw.hidden_size / raw.num_attention_heads
            }
            None => {
                return Err(bad(format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    raw.hidden_size, raw.num_attention_heads
                )));
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(bad(format!(
                "head_dim {head_dim} must be even and positive (RoPE pairs)"
            )));
        }
        if [
            raw.vocab_size,
            raw.hidden_size,
            raw.intermediate_size,
            raw.num_hidden_layers,
        ]
        .contains(&0)
        {
            return Err(bad(
                "vocab_size, hidden_size, intermediate_size and num_hidden_layers must be positive"
                    .into(),
            ));
        }
        let config = Qwen2Config {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: raw.rms_norm_eps,
            rope_theta,
            max_position_embeddings: raw.max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings,
            hidden_act: raw.hidden_act,
            torch_dtype: raw.torch_dtype,
        };
        // Surfaces an unknown dtype name at load rather than at first use.
        config.dtype().map_err(bad)?;
        Ok(config)
    }

    /// The checkpoint dtype named by `torch_dtype` / `dtype` (`None` if the config names none).
    pub fn dtype(&self) -> Result<Option<DType>, String> {
        match self.torch_dtype.as_deref() {
            None => Ok(None),
            Some("float32") => Ok(Some(DType::F32)),
            Some("bfloat16") => Ok(Some(DType::BF16)),
            Some("float16") => Ok(Some(DType::F16)),
            Some(other) => Err(format!(
                "torch_dtype {other:?} is not a float dtype this port loads"
            )),
        }
    }

    /// Query heads per key/value head.
    pub fn num_key_value_groups(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = r#"{
        "architectures": ["Qwen2ForCausalLM"], "hidden_act": "silu", "hidden_size": 3584,
        "intermediate_size": 18944, "max_position_embeddings": 32768, "num_attention_heads": 28,
        "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
        "rope_scaling": null, "rope_theta": 1000000.0, "sliding_window": 131072,
        "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_sliding_window": false,
        "vocab_size": 151651, "model_max_length": 4096
    }"#;

    #[test]
    fn reads_transformers_4_config() {
        let c = Qwen2Config::from_json(V4, Path::new("llm/config.json")).unwrap();
        assert_eq!(c.head_dim, 128);
        assert_eq!(c.num_key_value_groups(), 7);
        assert_eq!(c.rope_theta, 1e6);
        assert_eq!(c.dtype().unwrap(), Some(DType::BF16));
    }

    #[test]
    fn reads_transformers_5_rope_parameters() {
        let json = V4
            .replace(
                r#""rope_theta": 1000000.0,"#,
                r#""rope_parameters": {"rope_type": "default", "rope_theta": 5.0},"#,
            )
            .replace("torch_dtype", "dtype");
        let c = Qwen2Config::from_json(&json, Path::new("c.json")).unwrap();
        assert_eq!(c.rope_theta, 5.0);
        assert_eq!(c.torch_dtype.as_deref(), Some("bfloat16"));
    }

    #[test]
    fn refuses_other_activation_naming_the_file() {
        let json = V4.replace(r#""hidden_act": "silu""#, r#""hidden_act": "gelu""#);
        let err = Qwen2Config::from_json(&json, Path::new("llm/config.json")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("llm/config.json") && msg.contains("gelu"),
            "{msg}"
        );
    }

    #[test]
    fn refuses_rope_scaling_and_sliding_window() {
        let json = V4.replace(
            r#""rope_scaling": null"#,
            r#""rope_scaling": {"type": "linear", "factor": 2.0}"#,
        );
        assert!(Qwen2Config::from_json(&json, Path::new("c.json")).is_err());
        let json = V4.replace(
            r#""use_sliding_window": false"#,
            r#""use_sliding_window": true"#,
        );
        assert!(Qwen2Config::from_json(&json, Path::new("c.json")).is_err());
    }

    #[test]
    fn missing_field_names_the_file() {
        let json = V4.replace(r#""hidden_size": 3584,"#, "");
        let msg = Qwen2Config::from_json(&json, Path::new("llm/config.json"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("llm/config.json") && msg.contains("hidden_size"),
            "{msg}"
        );
    }
}
