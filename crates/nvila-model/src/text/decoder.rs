//! `Qwen2DecoderLayer` (`modeling_qwen2.py`): pre-norm residual blocks,
//! `x + attn(input_layernorm(x))`, then `x + mlp(post_attention_layernorm(x))`.

use burn::module::Module;
use burn::tensor::{Bool, Tensor};

use crate::error::ModelError;
use crate::text::attention::Qwen2Attention;
use crate::text::cache::KvCache;
use crate::text::config::Qwen2Config;
use crate::text::mlp::Qwen2Mlp;
use crate::text::rms_norm::Qwen2RmsNorm;
use crate::weights::Weights;

/// One decoder layer.
#[derive(Module, Debug)]
pub struct Qwen2DecoderLayer {
    /// Self-attention (`self_attn.{q,k,v,o}_proj`).
    pub self_attn: Qwen2Attention,
    /// Gated MLP (`mlp.{gate,up,down}_proj`).
    pub mlp: Qwen2Mlp,
    /// Norm before attention, weight `[hidden]`.
    pub input_layernorm: Qwen2RmsNorm,
    /// Norm before the MLP, weight `[hidden]`.
    pub post_attention_layernorm: Qwen2RmsNorm,
}

impl Qwen2DecoderLayer {
    /// Loads the layer from `w` (prefixed with `model.layers.N`).
    pub fn load(w: &Weights, config: &Qwen2Config) -> Result<Qwen2DecoderLayer, ModelError> {
        let (h, eps) = (config.hidden_size, config.rms_norm_eps);
        Ok(Qwen2DecoderLayer {
            self_attn: Qwen2Attention::load(&w.pp("self_attn"), config)?,
            mlp: Qwen2Mlp::load(&w.pp("mlp"), h, config.intermediate_size)?,
            input_layernorm: Qwen2RmsNorm::load(&w.pp("input_layernorm"), h, eps)?,
            post_attention_layernorm: Qwen2RmsNorm::load(
                &w.pp("post_attention_layernorm"),
                h,
                eps,
            )?,
        })
    }

    /// # Shapes
    ///
    /// - x: `[batch, seq, hidden]`
    /// - cos, sin: `[batch, 1, seq, head_dim]`
    /// - mask: `[batch, 1, seq, key_len]` (see [`crate::text::attention::attention_mask`]), `true` = masked
    /// - output: `[batch, seq, hidden]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        cos: Tensor<4>,
        sin: Tensor<4>,
        mask: Option<Tensor<4, Bool>>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor<3>, ModelError> {
        let attn = self.self_attn.forward(
            self.input_layernorm.forward(x.clone()),
            cos,
            sin,
            mask,
            cache,
        )?;
        let x = x + attn;
        let mlp = self
            .mlp
            .forward(self.post_attention_layernorm.forward(x.clone()));
        Ok(x + mlp)
    }
}
