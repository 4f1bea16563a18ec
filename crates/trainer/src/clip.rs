//! Global-norm gradient clipping, as `torch.nn.utils.clip_grad_norm_` (torch 2.15
//! `torch/nn/utils/clip_grad.py`), which HF's `Trainer` calls with `max_grad_norm` and whose
//! pre-clip result it logs as `grad_norm`.
//!
//! burn's `GradientClipping::Norm` clips every tensor by its own norm (burn.md §3.4), which is a
//! different algorithm; this module computes the norm over all trainable gradients together:
//!
//! - `norms = [‖g‖₂ for g in grads]` then `total_norm = ‖stack(norms)‖₂` (`_get_total_norm`),
//!   in f32;
//! - `clip_coef = max_norm / (total_norm + 1e-6)` — torch evaluates `float / tensor` as
//!   `tensor.reciprocal() * float` (`Tensor.__rdiv__`), so that is what is computed here;
//! - `clip_coef_clamped = clamp(clip_coef, max=1.0)` and every gradient is multiplied by it,
//!   also when it is 1 (`_clip_grads_with_norm_`: no data-dependent branch, hence no
//!   device → host sync just to decide).
//!
//! `max_grad_norm ≤ 0` disables clipping; the norm is still computed (transformers 5 logs it
//! either way through `_get_grad_norm`). With several ranks, call this on the all-reduced
//! gradients so every rank scales by the same global norm.

use burn::tensor::{DType, Tensor};

/// `‖grad‖₂` as a one-element f32 tensor on the gradient's device (no sync).
pub fn tensor_norm<const D: usize>(grad: &Tensor<D>) -> Tensor<1> {
    let grad = if grad.dtype() == DType::F32 {
        grad.clone()
    } else {
        grad.clone().cast(DType::F32)
    };
    grad.square().sum().sqrt()
}

/// `‖(n₁, …, n_k)‖₂` of per-tensor norms (torch's norm of norms). `None` when `norms` is empty
/// (torch returns 0 then; with nothing to clip the caller has nothing to scale either).
pub fn total_norm(norms: Vec<Tensor<1>>) -> Option<Tensor<1>> {
    if norms.is_empty() {
        return None;
    }
    Some(Tensor::cat(norms, 0).square().sum().sqrt())
}

/// The factor every gradient is multiplied by: `min(max_norm / (total_norm + 1e-6), 1)`, or
/// `None` when clipping is disabled (`max_norm ≤ 0`, HF's `max_grad_norm > 0` test, or NaN).
pub fn clip_coefficient(total_norm: &Tensor<1>, max_norm: f64) -> Option<Tensor<1>> {
    if max_norm.is_nan() || max_norm <= 0.0 {
        return None;
    }
    let coef = total_norm
        .clone()
        .add_scalar(1e-6f32)
        .recip()
        .mul_scalar(max_norm as f32);
    Some(coef.clamp_max(1.0f32))
}

/// `grad * coefficient`, broadcasting the one-element coefficient.
pub fn scale_gradient<const D: usize>(grad: Tensor<D>, coefficient: &Tensor<1>) -> Tensor<D> {
    let grad = if grad.dtype() == DType::F32 {
        grad
    } else {
        grad.cast(DType::F32)
    };
    grad * coefficient.clone().reshape([1; D])
}

/// Result of [`clip_grad_norm`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipOutcome {
    /// The pre-clip global norm (what HF logs as `grad_norm`).
    pub total_norm: f32,
    /// The factor the gradients were multiplied by (1 when below the limit or disabled).
    pub coefficient: f32,
}

/// Clips `grads` (all of rank `D`) in place to a global norm of `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_(params, max_norm)`, and returns the pre-clip norm. Reads the
/// norm back to the host once. For gradients of mixed ranks use [`tensor_norm`],
/// [`total_norm`], [`clip_coefficient`] and [`scale_gradient`] directly.
pub fn clip_grad_norm<const D: usize>(grads: &mut [Tensor<D>], max_norm: f64) -> ClipOutcome {
    let norms = grads.iter().map(tensor_norm).collect();
    let Some(total) = total_norm(norms) else {
        return ClipOutcome {
            total_norm: 0.0,
            coefficient: 1.0,
        };
    };
    let mut coefficient = 1.0;
    if let Some(coef) = clip_coefficient(&total, max_norm) {
        for grad in grads.iter_mut() {
            *grad = scale_gradient(grad.clone(), &coef);
        }
        coefficient = coef.into_scalar::<f32>();
    }
    ClipOutcome {
        total_norm: total.into_scalar::<f32>(),
        coefficient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t1(values: &[f32]) -> Tensor<1> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [values.len()]),
            (&Device::flex(), DType::F32),
        )
    }

    #[test]
    fn three_four_five() {
        let mut grads = vec![t1(&[3.0]), t1(&[4.0])];
        let out = clip_grad_norm(&mut grads, 1.0);
        assert_eq!(out.total_norm, 5.0);
        let scaled: Vec<f32> = grads.into_iter().map(|g| g.into_scalar::<f32>()).collect();
        assert!((scaled[0] - 0.6).abs() < 1e-6 && (scaled[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn disabled_leaves_gradients_alone() {
        let mut grads = vec![t1(&[3.0, 4.0])];
        let out = clip_grad_norm(&mut grads, 0.0);
        assert_eq!(out.total_norm, 5.0);
        assert_eq!(out.coefficient, 1.0);
        let values = grads[0].clone().into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(values, vec![3.0, 4.0]);
    }
}
