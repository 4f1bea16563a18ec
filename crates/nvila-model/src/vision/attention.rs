//! SigLIP self-attention: full (non-causal) multi-head attention over a tile's tokens, separate
//! q/k/v/out projections with biases, scale `head_dim^-0.5`
//! (`transformers/models/siglip/modeling_siglip.py::SiglipAttention`; dropout is 0 and VILA runs
//! the tower in eval mode).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Tensor};

use crate::error::ModelError;
use crate::text::Projection;
use crate::vision::config::SiglipVisionConfig;
use crate::weights::Weights;

/// `vision_model.encoder.layers.N.self_attn`; the projections are a type parameter as in the
/// LLM (`crate::text::Projection`), so LoRA (VILA's `lora_vt`) can wrap them.
#[derive(Module, Debug)]
pub struct SiglipAttention<P: Projection = Linear> {
    /// `[C, C]` + bias `[C]`.
    pub q_proj: P,
    /// `[C, C]` + bias `[C]`.
    pub k_proj: P,
    /// `[C, C]` + bias `[C]`.
    pub v_proj: P,
    /// `[C, C]` + bias `[C]`.
    pub out_proj: P,
    /// Heads `H`.
    pub num_heads: usize,
    /// Per-head width `C / H`.
    pub head_dim: usize,
}

impl SiglipAttention {
    /// Loads the four projections under `weights` (at `...layers.N.self_attn`).
    pub fn load(
        weights: &Weights,
        config: &SiglipVisionConfig,
    ) -> Result<SiglipAttention, ModelError> {
        let c = config.hidden_size;
        Ok(SiglipAttention {
            q_proj: weights.linear("q_proj", c, c, true)?,
            k_proj: weights.linear("k_proj", c, c, true)?,
            v_proj: weights.linear("v_proj", c, c, true)?,
            out_proj: weights.linear("out_proj", c, c, true)?,
            num_heads: config.num_attention_heads,
            head_dim: config.head_dim(),
        })
    }
}

impl<P: Projection> SiglipAttention<P> {
    /// The four projections with their names.
    pub fn projections(&self) -> [(&'static str, &P); 4] {
        [
            ("q_proj", &self.q_proj),
            ("k_proj", &self.k_proj),
            ("v_proj", &self.v_proj),
            ("out_proj", &self.out_proj),
        ]
    }

    /// Replaces each projection by `f(prefix.name, projection)`.
    pub fn map_projections<Q: Projection, E>(
        self,
        prefix: &str,
        f: &mut impl FnMut(&str, P) -> Result<Q, E>,
    ) -> Result<SiglipAttention<Q>, E> {
        Ok(SiglipAttention {
            q_proj: f(&format!("{prefix}.q_proj"), self.q_proj)?,
            k_proj: f(&format!("{prefix}.k_proj"), self.k_proj)?,
            v_proj: f(&format!("{prefix}.v_proj"), self.v_proj)?,
            out_proj: f(&format!("{prefix}.out_proj"), self.out_proj)?,
            num_heads: self.num_heads,
            head_dim: self.head_dim,
        })
    }

    /// Every token attends to every token of its tile.
    ///
    /// # Shapes
    /// - `x`: `[n_tiles, tokens, C]`
    /// - returns: `[n_tiles, tokens, C]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [n_tiles, n_tokens, width] = x.dims();
        // [n, T, C] -> [n, T, H, D] -> [n, H, T, D].
        let heads = |t: Tensor<3>| {
            t.reshape([n_tiles, n_tokens, self.num_heads, self.head_dim])
                .swap_dims(1, 2)
        };
        let dtype = x.dtype();
        // Scores and softmax in f32 whatever the weights' dtype: HF's eager path takes the
        // softmax in f32 (`softmax(..., dtype=torch.float32)`) and VILA's flash-attention 2
        // accumulates in f32, while burn's fallback attention would stay in bf16.
        let q = heads(self.q_proj.forward(x.clone())).cast(DType::F32);
        let k = heads(self.k_proj.forward(x.clone())).cast(DType::F32);
        let v = heads(self.v_proj.forward(x)).cast(DType::F32);
        // The default scale is 1/sqrt(head_dim), HF's `self.scale = self.head_dim**-0.5`.
        let out = attention(q, k, v, None, None, AttentionModuleOptions::default()).cast(dtype);
        // [n, H, T, D] -> [n, T, H, D] -> [n, T, C].
        let out = out.swap_dims(1, 2).reshape([n_tiles, n_tokens, width]);
        self.out_proj.forward(out)
    }
}
