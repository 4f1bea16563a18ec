//! `Qwen2DecoderLayer` (`modeling_qwen2.py`): pre-norm residual blocks,
//! `x + attn(input_layernorm(x))`, then `x + mlp(post_attention_layernorm(x))`.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Bool, Tensor};

use crate::error::ModelError;
use crate::text::attention::Qwen2Attention;
use crate::text::cache::KvCache;
use crate::text::config::Qwen2Config;
use crate::text::mlp::Qwen2Mlp;
use crate::text::projection::Projection;
use crate::text::rms_norm::Qwen2RmsNorm;
use crate::weights::Weights;

/// One decoder layer.
#[derive(Module, Debug)]
pub struct Qwen2DecoderLayer<P: Projection = Linear> {
    /// Self-attention (`self_attn.{q,k,v,o}_proj`).
    pub self_attn: Qwen2Attention<P>,
    /// Gated MLP (`mlp.{gate,up,down}_proj`).
    pub mlp: Qwen2Mlp<P>,
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
}

impl<P: Projection> Qwen2DecoderLayer<P> {
    /// The layer's seven projections with their paths inside the layer (`self_attn.q_proj`, …,
    /// `mlp.down_proj`), in checkpoint order.
    pub fn projections(&self) -> [(&'static str, &P); 7] {
        let (attn, mlp) = (&self.self_attn, &self.mlp);
        [
            ("self_attn.q_proj", &attn.q_proj),
            ("self_attn.k_proj", &attn.k_proj),
            ("self_attn.v_proj", &attn.v_proj),
            ("self_attn.o_proj", &attn.o_proj),
            ("mlp.gate_proj", &mlp.gate_proj),
            ("mlp.up_proj", &mlp.up_proj),
            ("mlp.down_proj", &mlp.down_proj),
        ]
    }

    /// Replaces each projection by `f(path, projection)`, paths under `prefix`
    /// (`prefix.self_attn.q_proj`, `prefix.mlp.down_proj`, …).
    pub fn map_projections<Q: Projection, E>(
        self,
        prefix: &str,
        f: &mut impl FnMut(&str, P) -> Result<Q, E>,
    ) -> Result<Qwen2DecoderLayer<Q>, E> {
        Ok(Qwen2DecoderLayer {
            self_attn: self
                .self_attn
                .map_projections(&format!("{prefix}.self_attn"), f)?,
            mlp: self.mlp.map_projections(&format!("{prefix}.mlp"), f)?,
            input_layernorm: self.input_layernorm,
            post_attention_layernorm: self.post_attention_layernorm,
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
        let normed = self.input_layernorm.forward(x.clone());
        let attn = self.self_attn.core(normed, cos, sin, mask, cache)?;
        Ok(self.finish(x, attn))
    }

    /// The layer's first half up to the attention core: q, k, v of `input_layernorm(x)`. With
    /// [`crate::text::attention::attend`] and [`Self::finish`] this is [`Self::forward`] in
    /// three stages, which lets a trainer recompute the attention core in query blocks.
    ///
    /// # Shapes
    ///
    /// - x: `[batch, seq, hidden]`
    /// - cos, sin: `[batch, 1, seq, head_dim]`
    /// - output: q `[batch, heads, seq, head_dim]`; k, v `[batch, kv_heads, seq, head_dim]`
    pub fn qkv(&self, x: Tensor<3>, cos: Tensor<4>, sin: Tensor<4>) -> [Tensor<4>; 3] {
        self.self_attn
            .qkv(self.input_layernorm.forward(x), cos, sin)
    }

    /// The layer after the attention core: `h = x + o_proj(attn)`, then
    /// `h + mlp(post_attention_layernorm(h))`.
    ///
    /// # Shapes
    ///
    /// - x: `[batch, seq, hidden]` (the layer's input)
    /// - attn: `[batch, seq, heads * head_dim]`
    /// - output: `[batch, seq, hidden]`
    pub fn finish(&self, x: Tensor<3>, attn: Tensor<3>) -> Tensor<3> {
        let x = x + self.self_attn.o_proj.forward(attn);
        let mlp = self
            .mlp
            .forward(self.post_attention_layernorm.forward(x.clone()));
        x + mlp
    }
}
