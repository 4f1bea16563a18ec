//! Rotary position embedding as HF Qwen2 applies it (`Qwen2RotaryEmbedding`,
//! `rotate_half`, `apply_rotary_pos_emb` in `modeling_qwen2.py`).
//!
//! - Layout: **rotate-half**, pairing feature `i` with `i + d/2` (`torch.cat((-x2, x1))`), not
//!   burn's `RotaryEncoding`, which pairs interleaved features `(2i, 2i+1)`.
//! - `inv_freq = 1 / theta^(arange(0, d, 2) / d)` in f32 (`compute_default_rope_parameters`).
//! - `freqs = position_ids.float() * inv_freq` and `cos`/`sin` are computed in f32, then cast to
//!   the activation dtype (`Qwen2RotaryEmbedding.forward`); the rotation itself runs in the
//!   activation dtype (bf16 in bf16 models), as in HF.

use burn::tensor::{DType, Device, FloatDType, Int, Tensor, TensorData};

/// The `inv_freq` table of one head width (HF's non-persistent `inv_freq` buffer).
///
/// Kept on the host and uploaded to the positions' device on use, so a model moved to another
/// device needs nothing moved here.
#[derive(Clone, Debug, PartialEq)]
pub struct RotaryEmbedding {
    /// `[head_dim / 2]`.
    inv_freq: Vec<f32>,
}

impl RotaryEmbedding {
    /// `inv_freq` for `head_dim` (even) and base `theta`.
    pub fn new(head_dim: usize, theta: f64) -> RotaryEmbedding {
        // All f32, step by step as torch does: arange(0, d, 2).float() / d, then
        // theta ** that (theta as f32, since the tensor is f32), then 1.0 / that.
        let theta = theta as f32;
        let inv_freq: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / theta.powf(i as f32 / head_dim as f32))
            .collect();
        RotaryEmbedding { inv_freq }
    }

    /// `cos` and `sin` for `positions`, in `dtype`, ready to broadcast over heads.
    ///
    /// # Shapes
    ///
    /// - positions: `[batch, seq]`
    /// - outputs: `[batch, 1, seq, head_dim]` each
    pub fn cos_sin(&self, positions: Tensor<2, Int>, dtype: DType) -> (Tensor<4>, Tensor<4>) {
        let n = self.inv_freq.len();
        let inv_freq = Tensor::<1>::from_data(
            TensorData::new(self.inv_freq.clone(), [n]),
            (&positions.device(), DType::F32),
        );
        let positions = positions.cast(FloatDType::F32).unsqueeze_dim::<3>(2); // [b, s, 1]
        let freqs = positions * inv_freq.unsqueeze::<3>(); // [b, s, d/2]
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 2); // [b, s, d]
        let cos = emb.clone().cos().cast(dtype).unsqueeze_dim::<4>(1);
        let sin = emb.sin().cast(dtype).unsqueeze_dim::<4>(1);
        (cos, sin)
    }
}

/// `[start, start + seq)` for every row: HF's default `position_ids` with `past_seen_tokens`
/// (`Qwen2Model.forward`).
///
/// # Shapes
///
/// - output: `[batch, seq]`
pub fn sequential_positions(
    batch: usize,
    start: usize,
    seq: usize,
    device: &Device,
) -> Tensor<2, Int> {
    let start = start as i64;
    Tensor::<1, Int>::arange(start..start + seq as i64, device)
        .unsqueeze::<2>()
        .expand([batch, seq])
}

/// `cat(-x[..., d/2:], x[..., :d/2])`.
fn rotate_half(x: Tensor<4>) -> Tensor<4> {
    let d = x.dims()[3];
    let x1 = x.clone().narrow(3, 0, d / 2);
    let x2 = x.narrow(3, d / 2, d / 2);
    Tensor::cat(vec![x2.neg(), x1], 3)
}

/// `x * cos + rotate_half(x) * sin`, in `x`'s dtype (`cos`/`sin` must already be in it).
///
/// # Shapes
///
/// - x: `[batch, heads, seq, head_dim]`
/// - cos, sin: `[batch, 1, seq, head_dim]`
/// - output: like `x`
pub fn apply_rotary(x: Tensor<4>, cos: Tensor<4>, sin: Tensor<4>) -> Tensor<4> {
    x.clone() * cos + rotate_half(x) * sin
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tolerance;

    #[test]
    fn rotates_pairs_i_and_i_plus_half() {
        let device = Device::flex();
        let rope = RotaryEmbedding::new(4, 10000.0);
        // Position 1: angles [1, 0.01, 1, 0.01] (inv_freq = [1, 1/100]).
        let (cos, sin) = rope.cos_sin(sequential_positions(1, 1, 1, &device), DType::F32);
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0], [1, 1, 1, 4]),
            (&device, DType::F32),
        );
        // Feature 0 pairs with feature 2: (cos 1, 0, sin 1, 0).
        let (c, s) = (1.0f32.cos(), 1.0f32.sin());
        apply_rotary(x, cos, sin)
            .into_data()
            .assert_approx_eq::<f32>(
                &TensorData::new(vec![c, 0.0, s, 0.0], [1, 1, 1, 4]),
                Tolerance::default(),
            );
    }
}
