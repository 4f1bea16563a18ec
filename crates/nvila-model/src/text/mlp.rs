//! `Qwen2MLP` (`modeling_qwen2.py`): `down_proj(silu(gate_proj(x)) * up_proj(x))`, no biases.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use crate::error::ModelError;
use crate::weights::Weights;

/// The SiLU-gated feed-forward block.
#[derive(Module, Debug)]
pub struct Qwen2Mlp {
    /// `[hidden_size, intermediate_size]` (burn layout; the checkpoint stores `[out, in]`).
    pub gate_proj: Linear,
    /// `[hidden_size, intermediate_size]`.
    pub up_proj: Linear,
    /// `[intermediate_size, hidden_size]`.
    pub down_proj: Linear,
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

    /// # Shapes
    ///
    /// - x: `[batch, seq, hidden]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}
