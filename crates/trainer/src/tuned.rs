//! Parts trained in full beside the LLM's LoRA adapters, as VILA does with `tune_mm_projector` /
//! `tune_vision_tower` (`model.get_mm_projector().requires_grad_(True)`,
//! `model.get_vision_tower().requires_grad_(True)` after `get_peft_model`,
//! `llava/train/train.py`).
//!
//! - **Master weights in f32.** The tuned parts' parameters become f32 tracked leaves; the tower
//!   and the projector cast their input to their weights' dtype and `encode_images` casts the
//!   result to the LLM's, so AdamW updates f32 values (DeepSpeed keeps an fp32 master copy) and
//!   resuming from `non_lora_trainables.safetensors` (written in f32) is exact.
//! - **Gradients** come from the surrogate `Σ embeds ⊙ ∂loss/∂embeds` (the LLM's input gradient
//!   that the checkpointed step returns), backpropagated through the splice, the projector and
//!   (when tuned) the tower. A frozen projector still passes the gradient on to a tuned tower.
//! - **Keys** are VILA's `named_parameters()` names ([`VilaParts`]); decay groups follow
//!   `LLaVATrainer.create_optimizer`: parameters of LayerNorms and every bias get no decay.
//! - The tower is cut at the selected layer, so its unused last layer and `post_layernorm`
//!   are not trained or saved; VILA trains them with no gradient (AdamW skips them) and saves
//!   them unchanged, and its loader (`strict=False`) accepts their absence.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Gradients, Tensor};
use lora::{LoraError, apply_non_lora_trainables, load_non_lora_trainables};
use nvila_model::text::Projection;
use nvila_model::{NvilaModel, VilaParts};

use crate::optim::DecayGroup;

/// Which parts train in full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuned {
    /// `tune_vision_tower`.
    pub vision_tower: bool,
    /// `tune_mm_projector`.
    pub mm_projector: bool,
}

impl Tuned {
    /// Whether anything before the LLM trains (the step then backpropagates into it).
    pub fn any(self) -> bool {
        self.vision_tower || self.mm_projector
    }
}

/// Makes the chosen parts f32 trainable leaves (the model is on an autodiff device).
pub fn make_trainable<P: Projection>(model: &mut NvilaModel<P>, tuned: Tuned) {
    if tuned.vision_tower {
        model.vision_tower = lora::make_trainable(model.vision_tower.clone());
    }
    if tuned.mm_projector {
        model.mm_projector = lora::make_trainable(model.mm_projector.clone());
    }
}

/// The tuned tensors (f32 rows without a graph, `[1, n]`) by VILA key, with their decay group,
/// in VILA's order; empty when nothing is tuned.
pub fn trainables<P: Projection>(model: &NvilaModel<P>) -> Vec<(String, Tensor<2>, DecayGroup)> {
    lora::flat_trainables(&VilaParts::of(model))
        .into_iter()
        .map(|p| {
            let group = DecayGroup::for_parameter(&p.key, p.in_norm);
            (p.key, p.value, group)
        })
        .collect()
}

/// Number of tuned scalars.
pub fn trainable_count<P: Projection>(model: &NvilaModel<P>) -> usize {
    trainables(model).iter().map(|(_, v, _)| v.dims()[1]).sum()
}

/// Takes the tuned parts' gradients out of `grads` (f32 rows by key).
pub fn take_grads<P: Projection>(
    model: &NvilaModel<P>,
    grads: &mut Gradients,
) -> Vec<(String, Tensor<2>)> {
    lora::take_flat_grads(&VilaParts::of(model), grads)
}

/// Replaces the tuned values by `new` (rows by key, as [`trainables`] gives them).
pub fn update<P: Projection>(model: &mut NvilaModel<P>, new: &mut BTreeMap<String, Tensor<2>>) {
    lora::set_flat(VilaParts::of(model), new).put_into(model);
}

/// The tuned tensors under VILA's keys and PyTorch layouts (f32) for
/// `non_lora_trainables.safetensors`; empty when nothing is tuned (VILA then writes an empty
/// `non_lora_trainables.bin`).
pub fn non_lora_tensors<P: Projection>(
    model: &NvilaModel<P>,
) -> Result<BTreeMap<String, burn::tensor::TensorData>, LoraError> {
    lora::non_lora_trainables(&VilaParts::of(model))
}

/// Loads a checkpoint's `non_lora_trainables.safetensors` into the tuned parts (resume).
pub fn load<P: Projection>(
    model: &mut NvilaModel<P>,
    tuned: Tuned,
    file: &Path,
) -> Result<(), LoraError> {
    let tensors = load_non_lora_trainables(file)?;
    apply_non_lora_trainables(VilaParts::of(model), &tensors, file)?.put_into(model);
    make_trainable(model, tuned);
    Ok(())
}
