//! AdamW exactly as `torch.optim.AdamW`, on named f32 burn tensors.
//!
//! HF's `optim="adamw_torch"` (VILA's setting, nvila.md §5.3) is `torch.optim.AdamW` with
//! `betas=(0.9, 0.999)`, `eps=1e-8`. On CPU tensors torch's default (`foreach=None`) takes the
//! single-tensor path, `_single_tensor_adam` in torch 2.15 `torch/optim/adam.py` with
//! `decoupled_weight_decay=True`; per parameter, with `t` its own step count (a float32 tensor
//! in torch, a `u64` here):
//!
//! ```text
//! t += 1
//! if weight_decay != 0: p *= 1 - lr * weight_decay
//! m.lerp_(g, 1 - β1)                        # m + (1-β1)(g - m), = β1 m + (1-β1) g
//! v = v * β2 + (1 - β2) * g * g             # v.mul_(β2).addcmul_(g, g, value=1-β2)
//! step_size = lr / (1 - β1^t)               # Python floats (f64)
//! denom = sqrt(v) / sqrt(1 - β2^t) + eps    # sqrt(1-β2^t) as `(1-β2^t) ** 0.5` in f64
//! p += -step_size * m / denom               # p.addcdiv_(m, denom, value=-step_size)
//! ```
//!
//! Tensor arithmetic is f32 and the Python-float scalars are rounded to f32 where they meet a
//! tensor, as torch's CPU kernels do; the order of operations follows the kernels
//! (`addcmul`: `self + value * t1 * t2`; `addcdiv`: `self + value * t1 / t2`). The result is
//! bit-identical to a step-by-step f32 evaluation of the formulas above; torch itself differs
//! from that by an ulp or two in places (≤ 3e-7 relative on the reference trajectories of
//! `tests/infra_reference.rs`), because its vectorised CPU kernels fuse multiply-adds (`lerp`
//! calls `fmadd` explicitly).
//!
//! burn's own `AdamW` is not used: its defaults differ (eps 1e-5, weight decay 1e-4), its
//! clipping is per tensor, and its state is keyed by `ParamId`, which fresh LoRA params do not
//! keep across runs (burn.md §3.4, §3.6). State here is keyed by parameter name and saves to
//! `optimizer.safetensors` (`<name>.exp_avg`, `<name>.exp_avg_sq`, `<name>.step`), restored
//! bit-exactly. Updates are elementwise only, so they are bit-deterministic on a given device.
//!
//! Parameter groups follow VILA's `LLaVATrainer.create_optimizer`
//! (`llava/train/llava_trainer.py`): a parameter gets `weight_decay` unless it lives in a
//! LayerNorm module or its name contains `"bias"` ([`DecayGroup::for_parameter`]).

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{DType, Device, Tensor};

use crate::checkpoint::{self, CheckpointFile, NamedTensor, TensorFileError};

/// File name of the optimizer state inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// Metadata key of the optimizer file (its value is the JSON of [`AdamWConfig`]).
const METADATA_KEY: &str = "torch.optim.AdamW";

/// Errors of the optimizer.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// Parameter and gradient shapes differ.
    #[error("parameter {name}: gradient shape {grad:?} differs from parameter shape {param:?}")]
    GradShape {
        name: String,
        param: Vec<usize>,
        grad: Vec<usize>,
    },
    /// The stored moments have another shape than the parameter (state from another run or rank).
    #[error("parameter {name}: optimizer state has shape {state:?}, the parameter {param:?}")]
    StateShape {
        name: String,
        param: Vec<usize>,
        state: Vec<usize>,
    },
    /// Parameters must be f32 (master weights; bf16 moments lose the update, burn.md §3.4).
    #[error("parameter {name}: dtype {dtype:?}, AdamW needs f32 master weights")]
    NotF32 { name: String, dtype: DType },
    /// A hyper-parameter is out of torch's accepted range.
    #[error("AdamW: invalid {what} {value} ({rule})")]
    InvalidHyperparameter {
        what: &'static str,
        value: f64,
        rule: &'static str,
    },
    /// The saved state is malformed or incomplete.
    #[error("{}: {message}", path.display())]
    BadState {
        path: std::path::PathBuf,
        message: String,
    },
    /// The saved state could not be read or encoded.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// Tensor data problems.
    #[error(transparent)]
    Tensor(#[from] TensorFileError),
}

/// AdamW hyper-parameters, with `torch.optim.AdamW`'s meaning. `weight_decay` is the decay of
/// the decay group; the other group uses 0.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// β1 (HF `adam_beta1`, default 0.9).
    pub beta1: f64,
    /// β2 (HF `adam_beta2`, default 0.999).
    pub beta2: f64,
    /// ε (HF `adam_epsilon`, default 1e-8; burn's default is 1e-5).
    pub eps: f64,
    /// Decoupled weight decay of the decay group (HF `weight_decay`, default 0).
    pub weight_decay: f64,
}

impl AdamWConfig {
    /// HF's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.
    pub fn hf_default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// torch's argument checks (`Adam.__init__`): `0 ≤ eps`, `0 ≤ β < 1`, `0 ≤ weight_decay`.
    pub fn validate(&self) -> Result<(), OptimError> {
        let bad = |what, value, rule| Err(OptimError::InvalidHyperparameter { what, value, rule });
        if !(self.eps >= 0.0 && self.eps.is_finite()) {
            return bad("eps", self.eps, "must be finite and >= 0");
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return bad("beta1", self.beta1, "must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return bad("beta2", self.beta2, "must be in [0, 1)");
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("weight_decay", self.weight_decay, "must be finite and >= 0");
        }
        Ok(())
    }
}

/// Which parameter group a parameter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecayGroup {
    /// Gets `weight_decay`.
    Decay,
    /// Weight decay 0 (norm weights, biases).
    NoDecay,
}

impl DecayGroup {
    /// VILA's rule (`LLaVATrainer.create_optimizer`: `get_parameter_names(model,
    /// ALL_LAYERNORM_LAYERS)` then `"bias" not in name`): no decay for parameters inside a
    /// LayerNorm-type module (`in_layer_norm`, which the caller knows from the module tree) or
    /// whose full name contains `"bias"`. transformers 5 additionally matches names against
    /// `layernorm|rmsnorm|(^|\.)norm($|\.)|_norm($|\.)`; VILA's trainer overrides that.
    pub fn for_parameter(name: &str, in_layer_norm: bool) -> Self {
        if in_layer_norm || name.contains("bias") {
            DecayGroup::NoDecay
        } else {
            DecayGroup::Decay
        }
    }
}

/// Moments of one parameter, flattened.
#[derive(Debug, Clone)]
struct ParamState {
    shape: Vec<usize>,
    step: u64,
    exp_avg: Tensor<1>,
    exp_avg_sq: Tensor<1>,
}

/// `torch.optim.AdamW` state for a set of named parameters.
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamWConfig,
    state: BTreeMap<String, ParamState>,
}

impl AdamW {
    /// An optimizer with no state yet (moments are created at a parameter's first step, as
    /// torch's lazy state init).
    pub fn new(config: AdamWConfig) -> Result<Self, OptimError> {
        config.validate()?;
        Ok(Self {
            config,
            state: BTreeMap::new(),
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// How many steps parameter `name` has taken (`state[p]["step"]` in torch), 0 if none.
    pub fn param_step(&self, name: &str) -> u64 {
        self.state.get(name).map_or(0, |s| s.step)
    }

    /// Names of the parameters with state, sorted.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.state.keys().map(String::as_str)
    }

    /// One AdamW update of parameter `name` with learning rate `lr`; returns the new parameter.
    ///
    /// Call once per parameter per optimizer step (the lr is the schedule's for that step). A
    /// parameter without a gradient this step is simply not passed, as torch skips
    /// `p.grad is None`. The gradient is cast to f32 if needed; the parameter must be f32.
    pub fn step_param<const D: usize>(
        &mut self,
        name: &str,
        param: Tensor<D>,
        grad: Tensor<D>,
        lr: f64,
        group: DecayGroup,
    ) -> Result<Tensor<D>, OptimError> {
        if param.dtype() != DType::F32 {
            return Err(OptimError::NotF32 {
                name: name.to_string(),
                dtype: param.dtype(),
            });
        }
        let dims = param.dims();
        if grad.dims() != dims {
            return Err(OptimError::GradShape {
                name: name.to_string(),
                param: dims.to_vec(),
                grad: grad.dims().to_vec(),
            });
        }
        let grad = if grad.dtype() == DType::F32 {
            grad
        } else {
            grad.cast(DType::F32)
        };
        let n: usize = dims.iter().product();
        let device = param.device();
        let state = match self.state.remove(name) {
            Some(state) => {
                if state.shape != dims {
                    let shape = state.shape.clone();
                    self.state.insert(name.to_string(), state);
                    return Err(OptimError::StateShape {
                        name: name.to_string(),
                        param: dims.to_vec(),
                        state: shape,
                    });
                }
                state
            }
            None => ParamState {
                shape: dims.to_vec(),
                step: 0,
                exp_avg: Tensor::zeros([n], (&device, DType::F32)),
                exp_avg_sq: Tensor::zeros([n], (&device, DType::F32)),
            },
        };
        let weight_decay = match group {
            DecayGroup::Decay => self.config.weight_decay,
            DecayGroup::NoDecay => 0.0,
        };
        let (new_param, new_state) = adamw_update(
            &self.config,
            param.reshape([n]),
            grad.reshape([n]),
            state,
            lr,
            weight_decay,
        );
        self.state.insert(name.to_string(), new_state);
        Ok(new_param.reshape(dims))
    }

    /// The state as tensors: `<name>.exp_avg`, `<name>.exp_avg_sq` (the parameter's shape) and
    /// `<name>.step` (a scalar, f32 as torch stores it). Copies device → host.
    pub fn to_named_tensors(&self) -> Result<Vec<NamedTensor>, OptimError> {
        let mut out = Vec::with_capacity(self.state.len() * 3);
        for (name, state) in &self.state {
            let mut exp_avg =
                NamedTensor::from_tensor(format!("{name}.exp_avg"), state.exp_avg.clone())?;
            exp_avg.shape = state.shape.clone();
            let mut exp_avg_sq =
                NamedTensor::from_tensor(format!("{name}.exp_avg_sq"), state.exp_avg_sq.clone())?;
            exp_avg_sq.shape = state.shape.clone();
            out.push(exp_avg);
            out.push(exp_avg_sq);
            out.push(NamedTensor::new(
                format!("{name}.step"),
                vec![],
                vec![state.step as f32],
            )?);
        }
        Ok(out)
    }

    /// The state as safetensors bytes (the content of [`OPTIMIZER_FILE`]); the metadata records
    /// the hyper-parameters.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, OptimError> {
        let config = serde_json::to_string(&self.config).unwrap_or_default();
        Ok(checkpoint::encode_safetensors(
            &self.to_named_tensors()?,
            Some((METADATA_KEY, &config)),
        )?)
    }

    /// The state as a checkpoint file named [`OPTIMIZER_FILE`].
    pub fn checkpoint_file(&self) -> Result<CheckpointFile, OptimError> {
        Ok(CheckpointFile::bytes(
            OPTIMIZER_FILE,
            self.to_safetensors()?,
        ))
    }

    /// Restores state saved by [`AdamW::to_safetensors`] onto `device`, with the hyper-parameters
    /// of `config` (the current run's; a change is logged, as torch would use the new ones
    /// too). `path` only names the source in errors.
    pub fn from_safetensors(
        bytes: &[u8],
        config: AdamWConfig,
        device: &Device,
        path: &Path,
    ) -> Result<Self, OptimError> {
        let bad = |message: String| OptimError::BadState {
            path: path.to_path_buf(),
            message,
        };
        let decoded = checkpoint::decode_safetensors(bytes).map_err(|e| bad(e.to_string()))?;
        if let Some(saved) = decoded.metadata.get(METADATA_KEY)
            && let Ok(saved) = serde_json::from_str::<AdamWConfig>(saved)
            && saved != config
        {
            tracing::warn!(
                path = %path.display(),
                "optimizer hyper-parameters changed since the checkpoint: {saved:?} -> {config:?}"
            );
        }
        let mut optimizer = Self::new(config)?;
        for tensor in &decoded.tensors {
            let Some(name) = tensor.name.strip_suffix(".step") else {
                continue;
            };
            let step = tensor.values.first().copied().unwrap_or(f32::NAN);
            if !(step.is_finite() && step >= 0.0 && step.fract() == 0.0) {
                return Err(bad(format!("{}: invalid step count {step}", tensor.name)));
            }
            let moment = |suffix: &str| {
                decoded
                    .get(&format!("{name}.{suffix}"))
                    .ok_or_else(|| bad(format!("{name}.{suffix} is missing")))
            };
            let exp_avg = moment("exp_avg")?;
            let exp_avg_sq = moment("exp_avg_sq")?;
            if exp_avg.shape != exp_avg_sq.shape {
                return Err(bad(format!(
                    "{name}: exp_avg shape {:?} differs from exp_avg_sq shape {:?}",
                    exp_avg.shape, exp_avg_sq.shape
                )));
            }
            let flat = |t: &NamedTensor| {
                NamedTensor::new(t.name.clone(), vec![t.values.len()], t.values.clone())
                    .and_then(|t| t.to_tensor::<1>(device))
            };
            optimizer.state.insert(
                name.to_string(),
                ParamState {
                    shape: exp_avg.shape.clone(),
                    step: step as u64,
                    exp_avg: flat(exp_avg)?,
                    exp_avg_sq: flat(exp_avg_sq)?,
                },
            );
        }
        let known: std::collections::BTreeSet<String> = optimizer
            .state
            .keys()
            .flat_map(|n| {
                [
                    format!("{n}.step"),
                    format!("{n}.exp_avg"),
                    format!("{n}.exp_avg_sq"),
                ]
            })
            .collect();
        if let Some(stray) = decoded.tensors.iter().find(|t| !known.contains(&t.name)) {
            return Err(bad(format!("unexpected tensor {}", stray.name)));
        }
        Ok(optimizer)
    }

    /// Reads [`OPTIMIZER_FILE`] (or any file written by [`AdamW::to_safetensors`]).
    pub fn load(path: &Path, config: AdamWConfig, device: &Device) -> Result<Self, OptimError> {
        let bytes =
            std::fs::read(path).map_err(|source| checkpoint::CheckpointError::ReadFile {
                path: path.to_path_buf(),
                source,
            })?;
        Self::from_safetensors(&bytes, config, device, path)
    }
}

/// torch's `_single_tensor_adam` body for one flattened parameter (see the module docs).
fn adamw_update(
    config: &AdamWConfig,
    param: Tensor<1>,
    grad: Tensor<1>,
    state: ParamState,
    lr: f64,
    weight_decay: f64,
) -> (Tensor<1>, ParamState) {
    let step = state.step + 1;
    let mut param = param;
    if weight_decay != 0.0 {
        param = param.mul_scalar((1.0 - lr * weight_decay) as f32);
    }
    // exp_avg.lerp_(grad, 1 - beta1); torch's scalar kernel: weight < 0.5 ? self + w (end - self)
    // : end - (end - self) (1 - w).
    let weight = 1.0 - config.beta1;
    let diff = grad.clone() - state.exp_avg.clone();
    let exp_avg = if weight.abs() < 0.5 {
        state.exp_avg + diff.mul_scalar(weight as f32)
    } else {
        grad.clone() - diff.mul_scalar((1.0 - weight) as f32)
    };
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    let exp_avg_sq = state.exp_avg_sq.mul_scalar(config.beta2 as f32)
        + grad.clone().mul_scalar((1.0 - config.beta2) as f32) * grad;
    // Python floats; `step` is a float32 tensor's `.item()` in torch, exact for any real count.
    let t = step as f64;
    let bias_correction1 = 1.0 - config.beta1.powf(t);
    let bias_correction2 = 1.0 - config.beta2.powf(t);
    let step_size = lr / bias_correction1;
    let bias_correction2_sqrt = bias_correction2.powf(0.5);
    let denom = exp_avg_sq
        .clone()
        .sqrt()
        .div_scalar(bias_correction2_sqrt as f32)
        .add_scalar(config.eps as f32);
    // param.addcdiv_(exp_avg, denom, value=-step_size): self + (value * t1) / t2.
    let param = param + exp_avg.clone().mul_scalar((-step_size) as f32) / denom;
    (
        param,
        ParamState {
            shape: state.shape,
            step,
            exp_avg,
            exp_avg_sq,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn t(values: &[f32]) -> Tensor<1> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [values.len()]),
            (&Device::flex(), DType::F32),
        )
    }

    #[test]
    fn first_step_moves_by_lr_times_sign() {
        // With bias correction, step 1 gives m̂ = g, v̂ = g², so Δ = -lr g / (|g| + eps).
        let mut opt = AdamW::new(AdamWConfig::hf_default()).unwrap();
        let p = opt
            .step_param("w", t(&[1.0, 1.0]), t(&[0.5, -2.0]), 0.1, DecayGroup::Decay)
            .unwrap();
        let v = p.into_data().try_into_vec::<f32>().unwrap();
        assert!(
            (v[0] - 0.9).abs() < 1e-6 && (v[1] - 1.1).abs() < 1e-6,
            "{v:?}"
        );
        assert_eq!(opt.param_step("w"), 1);
    }

    #[test]
    fn decay_groups_follow_vila() {
        assert_eq!(
            DecayGroup::for_parameter("llm.layers.0.q_proj.lora_A.weight", false),
            DecayGroup::Decay
        );
        assert_eq!(
            DecayGroup::for_parameter("mm_projector.layers.1.bias", false),
            DecayGroup::NoDecay
        );
        assert_eq!(
            DecayGroup::for_parameter("vision.post_layernorm.weight", true),
            DecayGroup::NoDecay
        );
    }

    #[test]
    fn rejects_bad_input() {
        let mut opt = AdamW::new(AdamWConfig::hf_default()).unwrap();
        assert!(matches!(
            opt.step_param("w", t(&[1.0]), t(&[1.0, 2.0]), 0.1, DecayGroup::Decay),
            Err(OptimError::GradShape { .. })
        ));
        opt.step_param("w", t(&[1.0]), t(&[1.0]), 0.1, DecayGroup::Decay)
            .unwrap();
        assert!(matches!(
            opt.step_param("w", t(&[1.0, 2.0]), t(&[1.0, 2.0]), 0.1, DecayGroup::Decay),
            Err(OptimError::StateShape { .. })
        ));
        let bad = AdamWConfig {
            beta2: 1.0,
            ..AdamWConfig::hf_default()
        };
        assert!(AdamW::new(bad).is_err());
    }
}
