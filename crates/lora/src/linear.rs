//! [`LoraLinear`]: a frozen [`Linear`] plus a trainable low-rank update, PEFT's `lora.Linear`
//! (`peft/tuners/lora/layer.py`).
//!
//! burn's own `Module::apply_lora` forms the dense `W + s·AB` in every forward, so autodiff keeps a
//! weight-sized tensor and gradient per adapted matrix, as full fine-tuning would. Here the update
//! is applied to the activations instead, `y = base(x) + s·B(A(dropout(x)))`, which is what PEFT
//! does during training: the dense delta exists only in [`LoraLinear::merge`].

// PEFT's names `lora_A` / `lora_B` are the checkpoint keys; the `Module` derive repeats field names
// as local variables, so the allowance has to cover the whole file, not just the struct.
#![allow(non_snake_case)]

use std::path::Path;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::module::linear;
use burn::tensor::{DType, Tensor, TensorData};

use crate::error::LoraError;
use crate::factors::{LoraFactors, transpose_2d};
use crate::init::LoraInit;

/// Hyperparameters of one [`LoraLinear`], named as in PEFT's `LoraConfig`.
#[derive(Config, Debug)]
pub struct LoraLinearConfig {
    /// Rank of the update (PEFT `r`); must be positive.
    pub r: usize,
    /// Scale numerator (PEFT `lora_alpha`).
    pub lora_alpha: f64,
    /// Dropout probability on the adapter's input (PEFT `lora_dropout`), in `[0, 1)`.
    #[config(default = 0.0)]
    pub lora_dropout: f64,
    /// rsLoRA: scale by `alpha / √r` instead of `alpha / r` (PEFT `use_rslora`).
    #[config(default = false)]
    pub use_rslora: bool,
    /// How fresh factors are drawn (PEFT `init_lora_weights`).
    #[config(default = "LoraInit::Kaiming")]
    pub init: LoraInit,
    /// Seed for a private RNG stream; `None` draws from the device RNG. See
    /// [`module_seed`](crate::module_seed) for one seed per module path.
    #[config(default = "None")]
    pub seed: Option<u64>,
}

/// A [`Linear`] with a LoRA update: `y = base(x) + scaling · lora_B(lora_A(dropout(x)))`.
///
/// Field names are PEFT's, so burn's parameter paths (`<path>.lora_A.weight`) are PEFT's keys
/// without the `base_model.model.` prefix.
///
/// # Training state
///
/// Only `lora_A` and `lora_B` require gradients; `base` is frozen at construction. burn's
/// [`Module::unfreeze`] and `set_require_grad(true)` thaw *every* parameter, base included; thaw
/// other parts of a model with a group that excludes the bases instead.
///
/// # Precision
///
/// The factors are kept in f32 (optimizer state takes the parameter's dtype). The forward casts
/// them to the input's dtype, so a bf16 model computes the update in bf16. PEFT instead casts the
/// input to the factors' dtype; with f32 inputs both are the same computation.
#[derive(Module, Debug)]
pub struct LoraLinear {
    /// The wrapped layer, frozen: weight `[d_input, d_output]`, optional bias `[d_output]`.
    pub base: Linear,
    /// Down projection without bias, weight `[d_input, r]` (PEFT's `lora_A.weight` `[r, in]`,
    /// transposed), f32. Kaiming-uniform `U(-1/√d_input, 1/√d_input)` by default.
    pub lora_A: Linear,
    /// Up projection without bias, weight `[r, d_output]` (PEFT's `lora_B.weight` `[out, r]`,
    /// transposed), f32. Zero by default, so a fresh layer equals its base.
    pub lora_B: Linear,
    /// Dropout on the update's input only (active on an autodiff device while training).
    pub lora_dropout: Dropout,
    /// `lora_alpha / r`, or `lora_alpha / √r` with rsLoRA.
    pub scaling: f64,
    /// Whether `scaling · (BA)ᵀ` has been added into `base.weight` (see [`LoraLinear::merge`]).
    pub merged: bool,
}

impl LoraLinearConfig {
    /// The factor the update is multiplied by: `alpha / r` (or `alpha / √r` with rsLoRA).
    pub fn scaling(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Checks `r > 0`, a finite alpha and a dropout in `[0, 1)`.
    pub fn validate(&self) -> Result<(), LoraError> {
        if self.r == 0 {
            return Err(LoraError::InvalidConfig(
                "`r` should be a positive integer value but the value passed is 0".into(),
            ));
        }
        if !self.lora_alpha.is_finite() {
            return Err(LoraError::InvalidConfig(format!(
                "lora_alpha must be finite, got {}",
                self.lora_alpha
            )));
        }
        if !self.lora_dropout.is_finite() || !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(LoraError::InvalidConfig(format!(
                "lora_dropout must lie in [0, 1), got {}",
                self.lora_dropout
            )));
        }
        Ok(())
    }

    /// Wraps `base` with freshly drawn factors (see [`LoraInit`]) on the base's device.
    ///
    /// # Errors
    ///
    /// [`LoraError::InvalidConfig`] for `r = 0`, a non-finite alpha or a dropout outside `[0, 1)`.
    pub fn init(&self, base: Linear) -> Result<LoraLinear, LoraError> {
        self.validate()?;
        let weight = base.weight.val();
        let device = weight.device();
        let [d_in, d_out] = weight.dims();
        let (a, b) = self.init.factors(self.r, [d_in, d_out], self.seed, &device);
        Ok(self.assemble(base, a, b))
    }

    /// Wraps `base` with given factors in PEFT's layout (`lora_A` `[r, in]`, `lora_B` `[out, r]`,
    /// f32, bf16 or f16; stored as f32), e.g. PEFT-initialised weights for a parity test.
    ///
    /// # Errors
    ///
    /// [`LoraError::InvalidConfig`] as [`init`](Self::init); [`LoraError::BadTensor`] when a factor
    /// is not a float matrix of rank `r` that fits the base layer.
    pub fn init_with_factors(
        &self,
        base: Linear,
        factors: LoraFactors,
    ) -> Result<LoraLinear, LoraError> {
        self.init_from(base, factors, Path::new("<in memory>"), "")
    }

    /// [`init_with_factors`](Self::init_with_factors), naming `source` and `module` in errors.
    pub(crate) fn init_from(
        &self,
        base: Linear,
        factors: LoraFactors,
        source: &Path,
        module: &str,
    ) -> Result<LoraLinear, LoraError> {
        self.validate()?;
        let weight = base.weight.val();
        let device = weight.device();
        factors.check(self.r, Some(weight.dims()), source, module)?;
        let to_burn = |data: TensorData| -> Result<Tensor<2>, LoraError> {
            let data =
                transpose_2d(&data)
                    .try_cast(DType::F32)
                    .map_err(|e| LoraError::BadTensor {
                        path: source.to_path_buf(),
                        key: module.to_string(),
                        message: e.to_string(),
                    })?;
            Ok(Tensor::from_data(data, (&device, DType::F32)))
        };
        let a = to_burn(factors.lora_a)?;
        let b = to_burn(factors.lora_b)?;
        Ok(self.assemble(base, a, b))
    }

    /// Builds the layer from validated burn-layout f32 factors.
    fn assemble(&self, base: Linear, a: Tensor<2>, b: Tensor<2>) -> LoraLinear {
        let factor = |weight: Tensor<2>| Linear {
            // A fresh lineage: the factors are leaves whatever produced them.
            weight: Param::from_tensor(weight.detach()),
            bias: None,
        };
        LoraLinear {
            base: base.no_grad(),
            lora_A: factor(a),
            lora_B: factor(b),
            lora_dropout: DropoutConfig::new(self.lora_dropout).init(),
            scaling: self.scaling(),
            merged: false,
        }
    }
}

impl LoraLinear {
    /// Applies the layer.
    ///
    /// # Shapes
    ///
    /// - input: `[..., d_input]`
    /// - output: `[..., d_output]`, in the base layer's output dtype
    ///
    /// # Panics
    ///
    /// If the last axis of `input` is not `d_input` (as [`Linear::forward`]).
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if self.merged {
            return self.base.forward(input);
        }
        let dtype = input.dtype();
        let result = self.base.forward(input.clone());
        // No implicit promotion in burn: the f32 factors meet the activations in their dtype.
        let lora_a = self.lora_A.weight.val().cast(dtype);
        let lora_b = self.lora_B.weight.val().cast(dtype);
        let hidden = linear(self.lora_dropout.forward(input), lora_a, None);
        // Scaled after B, as PEFT does (`lora_B(lora_A(dropout(x))) * scaling`).
        let update = linear(hidden, lora_b, None).mul_scalar(self.scaling);
        let out_dtype = result.dtype();
        result + update.cast(out_dtype)
    }

    /// The rank `r` of the update.
    pub fn rank(&self) -> usize {
        self.lora_A.weight.dims()[1]
    }

    /// `[d_input, d_output]` of the base layer.
    pub fn dims(&self) -> [usize; 2] {
        self.base.weight.dims()
    }

    /// `scaling · (BA)ᵀ` in burn's `[d_input, d_output]` layout, f32, detached from autodiff:
    /// what [`merge`](Self::merge) adds to the base weight (PEFT's `get_delta_weight`, transposed).
    pub fn delta_weight(&self) -> Tensor<2> {
        let a = self.lora_A.weight.val().detach().cast(DType::F32);
        let b = self.lora_B.weight.val().detach().cast(DType::F32);
        a.matmul(b).mul_scalar(self.scaling)
    }

    fn shift_base(mut self, sign: f64) -> Self {
        let delta = self.delta_weight().mul_scalar(sign);
        self.base.weight = self.base.weight.map(|weight| {
            let dtype = weight.dtype();
            (weight.cast(DType::F32) + delta).cast(dtype).detach()
        });
        self
    }

    /// Adds `scaling · (BA)ᵀ` into the base weight (in f32, then back to the weight's dtype);
    /// afterwards [`forward`](Self::forward) runs the base layer only. A no-op when merged.
    pub fn merge(self) -> Self {
        if self.merged {
            tracing::debug!("LoRA layer already merged; nothing to do");
            return self;
        }
        let mut merged = self.shift_base(1.0);
        merged.merged = true;
        merged
    }

    /// Subtracts what [`merge`](Self::merge) added. With a bf16 base the round trip is not exact
    /// (each direction rounds), as in PEFT. A no-op when not merged.
    pub fn unmerge(self) -> Self {
        if !self.merged {
            tracing::debug!("LoRA layer not merged; nothing to unmerge");
            return self;
        }
        let mut unmerged = self.shift_base(-1.0);
        unmerged.merged = false;
        unmerged
    }

    /// The base layer with the update merged in, for inference without the adapter's cost.
    pub fn into_merged_linear(self) -> Linear {
        self.merge().base
    }

    /// The factors in PEFT's layout (`lora_A` `[r, in]`, `lora_B` `[out, r]`), as stored.
    ///
    /// # Errors
    ///
    /// [`LoraError::Readback`] when the device cannot return the data.
    pub fn factors(&self) -> Result<LoraFactors, LoraError> {
        let read = |weight: &Param<Tensor<2>>, key: &str| {
            weight
                .val()
                .try_into_data()
                .map(|data| transpose_2d(&data))
                .map_err(|e| LoraError::Readback {
                    key: key.to_string(),
                    message: format!("{e:?}"),
                })
        };
        Ok(LoraFactors {
            lora_a: read(&self.lora_A.weight, "lora_A.weight")?,
            lora_b: read(&self.lora_B.weight, "lora_B.weight")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, Distribution, Tolerance};

    fn base(device: &Device) -> Linear {
        LinearConfig::new(6, 5).init(device)
    }

    fn dense_reference(layer: &LoraLinear, x: Tensor<2>) -> Tensor<2> {
        let w = layer.base.weight.val() + layer.delta_weight();
        linear(x, w, layer.base.bias.as_ref().map(|b| b.val()))
    }

    #[test]
    fn fresh_layer_equals_base_and_random_layer_equals_dense_math() {
        let device = Device::flex();
        let x = Tensor::<2>::random([3, 6], Distribution::Default, &device);
        let config = LoraLinearConfig::new(2, 4.0).with_seed(Some(7));
        let layer = config.init(base(&device)).unwrap();
        layer
            .forward(x.clone())
            .into_data()
            .assert_eq(&layer.base.forward(x.clone()).into_data(), true);
        assert_eq!(layer.scaling, 2.0);
        assert_eq!(layer.rank(), 2);

        let layer = config
            .with_init(LoraInit::Random)
            .with_use_rslora(true)
            .init(base(&device))
            .unwrap();
        assert_eq!(layer.scaling, 4.0 / 2f64.sqrt());
        let y = layer.forward(x.clone());
        assert!(
            (y.clone() - layer.base.forward(x.clone()))
                .abs()
                .max()
                .into_scalar::<f32>()
                > 1e-3
        );
        y.into_data().assert_approx_eq::<f32>(
            &dense_reference(&layer, x.clone()).into_data(),
            Tolerance::absolute(1e-5),
        );
    }

    #[test]
    fn merge_unmerge_and_rank_three_inputs() {
        let device = Device::flex();
        let layer = LoraLinearConfig::new(3, 6.0)
            .with_init(LoraInit::Random)
            .with_seed(Some(1))
            .init(base(&device))
            .unwrap();
        let x = Tensor::<3>::random([2, 4, 6], Distribution::Default, &device);
        let y = layer.forward(x.clone());
        assert_eq!(y.dims(), [2, 4, 5]);
        let w0 = layer.base.weight.val().into_data();
        let merged = layer.merge();
        assert!(merged.merged);
        let y_merged = merged.forward(x.clone());
        y_merged
            .into_data()
            .assert_approx_eq::<f32>(&y.clone().into_data(), Tolerance::absolute(1e-5));
        let merged = merged.merge(); // idempotent
        let unmerged = merged.unmerge();
        assert!(!unmerged.merged);
        unmerged
            .base
            .weight
            .val()
            .into_data()
            .assert_approx_eq::<f32>(&w0, Tolerance::absolute(1e-6));
        let plain = unmerged.clone().into_merged_linear();
        plain
            .forward(x.clone())
            .into_data()
            .assert_approx_eq::<f32>(&y.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn bf16_inputs_compute_in_bf16_with_f32_factors() {
        let device = Device::flex();
        let layer = LoraLinearConfig::new(2, 2.0)
            .with_init(LoraInit::Random)
            .with_seed(Some(3))
            .init(base(&device))
            .unwrap();
        let x = Tensor::<2>::random([4, 6], Distribution::Default, &device);
        let y32 = layer.forward(x.clone());
        let mut half = layer.clone();
        half.base = half.base.map(&mut CastBf16);
        let y16 = half.forward(x.cast(DType::BF16));
        assert_eq!(y16.dtype(), DType::BF16);
        assert_eq!(half.lora_A.weight.dtype(), DType::F32);
        y16.cast(DType::F32)
            .into_data()
            .assert_approx_eq::<f32>(&y32.into_data(), Tolerance::absolute(5e-2));
    }

    struct CastBf16;
    impl burn::module::ModuleMapper for CastBf16 {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|t| t.cast(DType::BF16))
        }
    }

    #[test]
    fn bad_hyperparameters_are_errors() {
        let device = Device::flex();
        for config in [
            LoraLinearConfig::new(0, 1.0),
            LoraLinearConfig::new(2, f64::NAN),
            LoraLinearConfig::new(2, 1.0).with_lora_dropout(1.0),
            LoraLinearConfig::new(2, 1.0).with_lora_dropout(-0.1),
        ] {
            let e = config.init(base(&device)).unwrap_err();
            assert!(matches!(e, LoraError::InvalidConfig(_)), "{e}");
        }
        let e = LoraLinearConfig::new(0, 1.0)
            .init(base(&device))
            .unwrap_err()
            .to_string();
        assert!(e.contains("positive"), "{e}");
    }

    #[test]
    fn factors_round_trip_through_peft_layout() {
        let device = Device::flex();
        let layer = LoraLinearConfig::new(2, 2.0)
            .with_init(LoraInit::Random)
            .with_seed(Some(9))
            .init(base(&device))
            .unwrap();
        let factors = layer.factors().unwrap();
        assert_eq!(factors.lora_a.shape().as_slice(), &[2, 6]);
        assert_eq!(factors.lora_b.shape().as_slice(), &[5, 2]);
        let again = LoraLinearConfig::new(2, 2.0)
            .init_with_factors(layer.base.clone(), factors.clone())
            .unwrap();
        assert_eq!(again.factors().unwrap(), factors);
        let wrong = LoraFactors {
            lora_a: factors.lora_b.clone(),
            lora_b: factors.lora_a.clone(),
        };
        let e = LoraLinearConfig::new(2, 2.0)
            .init_with_factors(layer.base.clone(), wrong)
            .unwrap_err();
        assert!(matches!(e, LoraError::BadTensor { .. }), "{e}");
    }

    #[test]
    fn only_factors_require_grad_and_dropout_only_acts_under_autodiff() {
        let device = Device::flex().autodiff();
        let layer = LoraLinearConfig::new(2, 2.0)
            .with_lora_dropout(0.5)
            .with_init(LoraInit::Random)
            .init(LinearConfig::new(6, 5).init(&device))
            .unwrap();
        assert!(!layer.base.weight.is_require_grad());
        assert!(!layer.base.bias.as_ref().unwrap().is_require_grad());
        assert!(layer.lora_A.weight.is_require_grad());
        assert!(layer.lora_B.weight.is_require_grad());
        let x = Tensor::<2>::ones([64, 6], &device);
        let y = layer.forward(x.clone()).sum();
        let grads = y.backward();
        assert!(layer.lora_B.weight.grad(&grads).is_some());
        assert!(layer.base.weight.grad(&grads).is_none());
        // The dropout mask differs between calls in training, and vanishes in validation.
        let a = layer.forward(x.clone()).into_data();
        let b = layer.forward(x.clone()).into_data();
        assert_ne!(a, b);
        let valid = layer.valid();
        let x = x.inner();
        let a = valid.forward(x.clone()).into_data();
        valid.forward(x).into_data().assert_eq(&a, true);
    }
}
