//! `Qwen2MLP` (`modeling_qwen2.py`): `down_proj(silu(gate_proj(x)) * up_proj(x))`, no biases.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use crate::error::ModelError;
use crate::text::projection::Projection;
use crate::weights::Weights;

/// The SiLU-gated feed-forward block.
#[derive(Module, Debug)]
pub struct Qwen2Mlp<P: Projection = Linear> {
    /// `[hidden_size, intermediate_size]` (burn layout; the checkpoint stores `[out, in]`).
    pub gate_proj: P,
    /// `[hidden_size, intermediate_size]`.
    pub up_proj: P,
    /// `[intermediate_size, hidden_size]`.
    pub down_proj: P,
}

impl Qwen2Mlp {
    /// Loads `gate_proj`, `up_proj`, `down_proj` from `w` (prefixed with `...mlp`).
    pub fn load(w: &Weights, hidden: usize, intermediate: usize) -> Result<Qwen2Mlp, ModelError> {
        Ok(Qwen2Mlp {
            gate_proj: w.linear("gate_proj", hidden, intermediate, false)?,
            up_proj: w.linear("up_proj", hidden, intermediate, false)?,
            down_proj: w.linear("down_proj", intermediate, hidden, false)?,
        })
    }
}

impl<P: Projection> Qwen2Mlp<P> {
    /// Replaces each projection by `f(path, projection)`, `path` being `prefix.gate_proj` etc.
    pub fn map_projections<Q: Projection, E>(
        self,
        prefix: &str,
        f: &mut impl FnMut(&str, P) -> Result<Q, E>,
    ) -> Result<Qwen2Mlp<Q>, E> {
        Ok(Qwen2Mlp {
            gate_proj: f(&format!("{prefix}.gate_proj"), self.gate_proj)?,
            up_proj: f(&format!("{prefix}.up_proj"), self.up_proj)?,
            down_proj: f(&format!("{prefix}.down_proj"), self.down_proj)?,
        })
    }

    /// # Shapes
    ///
    /// - x: `[batch, seq, hidden]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}
