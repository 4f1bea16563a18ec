//! The linear layers of the decoder (`q/k/v/o_proj`, `gate/up/down_proj`) as a type parameter.
//!
//! A loaded model uses burn's `Linear`. A fine-tuning crate replaces them with its own layer (a
//! LoRA wrapper) through [`Qwen2ForCausalLM::map_projections`](crate::text::Qwen2ForCausalLM::map_projections),
//! which hands every projection over with its HF module path (`model.layers.0.self_attn.q_proj`),
//! the name PEFT's `target_modules` match against. This crate knows nothing of any adapter.

use burn::module::{Module, ModuleDisplay};
use burn::nn::Linear;
use burn::tensor::Tensor;

/// A linear map of the last axis, usable as a decoder projection.
pub trait Projection: Module + ModuleDisplay {
    /// # Shapes
    ///
    /// - x: `[batch, seq, d_in]`
    /// - output: `[batch, seq, d_out]`
    fn forward(&self, x: Tensor<3>) -> Tensor<3>;
}

impl Projection for Linear {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        Linear::forward(self, x)
    }
}
