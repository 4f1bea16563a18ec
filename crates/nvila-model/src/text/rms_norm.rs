//! `Qwen2RMSNorm` (`modeling_qwen2.py`): normalise in f32, cast back, then scale.
//!
//! HF computes `weight * (x.to(f32) * rsqrt(mean(x², -1) + eps)).to(input_dtype)`: the cast back
//! to the activation dtype happens **before** the weight multiply, so with bf16 activations the
//! multiply itself is in bf16. This port keeps that order.

use burn::module::{Module, Param};
use burn::tensor::{DType, Tensor};

use crate::error::ModelError;
use crate::weights::Weights;

/// RMSNorm over the last axis.
#[derive(Module, Debug)]
pub struct Qwen2RmsNorm {
    /// Scale, shape `[hidden_size]` (checkpoint key `weight`).
    pub weight: Param<Tensor<1>>,
    /// Added to the mean square before the square root.
    pub eps: f64,
}

impl Qwen2RmsNorm {
    /// Loads `weight` `[d]` from `w` (already prefixed with the norm's name).
    pub fn load(w: &Weights, d: usize, eps: f64) -> Result<Qwen2RmsNorm, ModelError> {
        Ok(Qwen2RmsNorm {
            weight: Param::from_tensor(w.tensor::<1>("weight", [d])?),
            eps,
        })
    }

    /// Normalises `x` over its last axis.
    ///
    /// # Shapes
    ///
    /// - x: `[..., d]`
    /// - output: `[..., d]`, in `x`'s dtype
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let variance = x.clone().square().mean_dim(D - 1);
        // torch.rsqrt(variance + eps); 1/sqrt agrees to an ulp.
        let normed = x * variance.add_scalar(self.eps).sqrt().recip();
        // The weight is in the checkpoint dtype, normally the activations' too; if a caller mixes
        // them, keep the activation dtype (burn has no implicit promotion).
        let weight = self.weight.val().cast(dtype).unsqueeze::<D>();
        normed.cast(dtype) * weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData, Tolerance};

    #[test]
    fn matches_hand_computation() {
        let device = Device::flex();
        let norm = Qwen2RmsNorm {
            weight: Param::from_tensor(Tensor::<1>::from_data(
                TensorData::from([1.0f32, 2.0]),
                (&device, DType::F32),
            )),
            eps: 0.0,
        };
        let x = Tensor::<2>::from_data(TensorData::from([[3.0f32, 4.0]]), (&device, DType::F32));
        // rms = sqrt((9 + 16) / 2) = sqrt(12.5)
        let r = 12.5f32.sqrt();
        norm.forward(x).into_data().assert_approx_eq::<f32>(
            &TensorData::from([[3.0 / r, 8.0 / r]]),
            Tolerance::default(),
        );
    }
}
