//! `tune_mm_projector`: the projector trained in full beside the LLM's LoRA adapters, as VILA
//! does (`model.get_mm_projector().requires_grad_(True)` after `get_peft_model`,
//! `llava/train/train.py`).
//!
//! - **Master weights in f32.** The projector's parameters become f32 tracked leaves (the
//!   projector casts its bf16 input up and its output is cast to the LLM's dtype by
//!   `NvilaModel::encode_images`), so AdamW updates f32 values, as DeepSpeed's fp32 master copy
//!   does, and resuming from `non_lora_trainables.safetensors` (written in f32) is exact.
//! - **Gradients** come from the surrogate `Σ embeds ⊙ ∂loss/∂embeds` (the LLM's input gradient
//!   that the checkpointed step returns), backpropagated through the splice into the projector.
//! - **Keys** are VILA's `named_parameters()` names, `base_model.model.mm_projector.layers.N.*`
//!   (nvila.md §6); decay groups follow `LLaVATrainer.create_optimizer`: LayerNorm weights and
//!   every bias get no weight decay.
//!
//! For the optimizer and the clip, every tensor is handled as a matrix: vectors as `[1, n]`
//! (the update and the norm are element-wise, so the layout does not matter; Linear weights stay
//! in burn's `[in, out]`).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Gradients, Tensor};
use lora::{LoraError, PEFT_KEY_PREFIX, apply_non_lora_trainables, load_non_lora_trainables};
use nvila_model::projector::{Projector, ProjectorLayer, ProjectorRoot};

use crate::optim::DecayGroup;

/// One trainable projector tensor, as the optimizer sees it.
pub struct ProjectorTrainable {
    /// `base_model.model.mm_projector.layers.N.weight` / `.bias`.
    pub key: String,
    /// f32, without a graph; vectors as `[1, n]`.
    pub value: Tensor<2>,
    /// VILA's weight-decay group.
    pub group: DecayGroup,
}

fn key(layer: usize, name: &str) -> String {
    format!("{PEFT_KEY_PREFIX}mm_projector.layers.{layer}.{name}")
}

fn row<const D: usize>(t: Tensor<D>) -> Tensor<2> {
    let n = t.dims().iter().product::<usize>();
    t.reshape([1, n])
}

/// Casts every parameter to f32 and marks it trainable.
struct MakeTrainable;

impl ModuleMapper for MakeTrainable {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param
            .map(|t| t.inner().cast(DType::F32).autodiff())
            .set_require_grad(true)
    }
}

/// The projector with f32 trainable parameters (call on a model on an autodiff device).
pub fn make_trainable(projector: Projector) -> Projector {
    projector.map(&mut MakeTrainable)
}

/// Visits every parameter of `projector` in VILA's `named_parameters()` order (position, then
/// weight before bias) with its key, whether it sits in a LayerNorm, and its value.
fn for_each_param(projector: &Projector, mut f: impl FnMut(String, bool, ParamRef<'_>)) {
    for (i, layer) in projector.layers.iter().enumerate() {
        match layer {
            ProjectorLayer::LayerNorm(norm) => {
                f(key(i, "weight"), true, ParamRef::Vector(&norm.gamma));
                if let Some(beta) = &norm.beta {
                    f(key(i, "bias"), true, ParamRef::Vector(beta));
                }
            }
            ProjectorLayer::Linear(linear) => {
                f(key(i, "weight"), false, ParamRef::Matrix(&linear.weight));
                if let Some(bias) = &linear.bias {
                    f(key(i, "bias"), false, ParamRef::Vector(bias));
                }
            }
            ProjectorLayer::DownSample(_) | ProjectorLayer::Gelu(_) => {}
        }
    }
}

enum ParamRef<'a> {
    Vector(&'a Param<Tensor<1>>),
    Matrix(&'a Param<Tensor<2>>),
}

/// The projector's trainable tensors, in VILA's order.
pub fn trainables(projector: &Projector) -> Vec<ProjectorTrainable> {
    let mut out = Vec::new();
    for_each_param(projector, |key, in_norm, param| {
        let value = match param {
            ParamRef::Vector(p) => row(p.val().inner()),
            ParamRef::Matrix(p) => p.val().inner(),
        };
        let group = DecayGroup::for_parameter(&key, in_norm);
        out.push(ProjectorTrainable { key, value, group });
    });
    out
}

/// Number of trainable scalars.
pub fn trainable_count(projector: &Projector) -> usize {
    let mut n = 0;
    for_each_param(projector, |_, _, param| {
        n += match param {
            ParamRef::Vector(p) => p.val().dims()[0],
            ParamRef::Matrix(p) => p.val().dims().iter().product(),
        };
    });
    n
}

/// Takes the projector's gradients out of `grads` (f32, vectors as `[1, n]`), by key.
pub fn take_grads(projector: &Projector, grads: &mut Gradients) -> Vec<(String, Tensor<2>)> {
    let mut out = Vec::new();
    for_each_param(projector, |key, _, param| {
        let grad = match param {
            ParamRef::Vector(p) => p.val().grad_remove(grads).map(row),
            ParamRef::Matrix(p) => p.val().grad_remove(grads),
        };
        if let Some(g) = grad {
            out.push((key, g.cast(DType::F32)));
        }
    });
    out
}

/// Replaces the projector's values by `new` (key → f32 matrix as [`trainables`] gives them),
/// keeping parameter ids, each a trainable leaf again.
pub fn update(projector: Projector, new: &mut BTreeMap<String, Tensor<2>>) -> Projector {
    let mut layers = Vec::with_capacity(projector.layers.len());
    for (i, layer) in projector.layers.into_iter().enumerate() {
        layers.push(match layer {
            ProjectorLayer::LayerNorm(mut norm) => {
                norm.gamma = set_vector(norm.gamma, new.remove(&key(i, "weight")));
                norm.beta = norm
                    .beta
                    .map(|b| set_vector(b, new.remove(&key(i, "bias"))));
                ProjectorLayer::LayerNorm(norm)
            }
            ProjectorLayer::Linear(mut linear) => {
                if let Some(w) = new.remove(&key(i, "weight")) {
                    linear.weight = linear.weight.map(|_| w.autodiff().require_grad());
                }
                linear.bias = linear
                    .bias
                    .map(|b| set_vector(b, new.remove(&key(i, "bias"))));
                ProjectorLayer::Linear(linear)
            }
            other => other,
        });
    }
    Projector {
        layers,
        ..projector
    }
}

fn set_vector(param: Param<Tensor<1>>, value: Option<Tensor<2>>) -> Param<Tensor<1>> {
    match value {
        Some(v) => param.map(|old| {
            let n = old.dims()[0];
            v.reshape([n]).autodiff().require_grad()
        }),
        None => param,
    }
}

/// The trainable projector tensors under VILA's keys and PyTorch layouts (f32), for
/// `non_lora_trainables.safetensors`; empty when the projector is frozen (VILA then writes an
/// empty `non_lora_trainables.bin`).
pub fn non_lora_tensors(
    projector: &Projector,
) -> Result<BTreeMap<String, burn::tensor::TensorData>, LoraError> {
    lora::non_lora_trainables(&ProjectorRoot {
        mm_projector: projector.clone(),
    })
}

/// Loads a checkpoint's `non_lora_trainables.safetensors` into a trainable projector (resume).
pub fn load(projector: Projector, file: &Path) -> Result<Projector, LoraError> {
    let tensors = load_non_lora_trainables(file)?;
    let root = apply_non_lora_trainables(
        ProjectorRoot {
            mm_projector: projector,
        },
        &tensors,
        file,
    )?;
    Ok(make_trainable(root.mm_projector))
}
