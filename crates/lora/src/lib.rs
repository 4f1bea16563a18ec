//! PEFT-compatible LoRA for burn modules. Knows nothing of any particular model.
//!
//! - [`LoraLinear`] wraps a frozen [`burn::nn::Linear`] with trainable f32 factors and computes
//!   `base(x) + scaling · B(A(dropout(x)))` on the activations; the dense `W + BA` is only formed
//!   by [`LoraLinear::merge`]. (burn's `Module::apply_lora` forms it in every forward, which
//!   costs as much memory as full fine-tuning.)
//! - [`TargetSelector`] decides which module paths get an adapter, with PEFT's rules;
//!   [`find_all_linear_names`] is VILA's default list.
//! - [`PeftAdapter`] reads and writes PEFT's folder (`adapter_config.json` +
//!   `adapter_model.safetensors`), byte-for-byte as PEFT writes it, and loads it into a model by
//!   path ([`PeftAdapter::wrap`] per layer or [`PeftAdapter::apply_to`] for a whole module).
//! - [`non_lora_trainables`] / [`apply_non_lora_trainables`] move other trainable parameters (a
//!   projector) in and out of a module under PyTorch names; they are saved as safetensors, and
//!   VILA's `non_lora_trainables.bin` is read by a restricted unpickler that never executes code.
//!
//! Module paths are burn's parameter paths (field names joined by `.`, `Vec` indices as
//! segments, enum variants skipped), which equal PyTorch's `named_modules()` names when a model's
//! fields carry the checkpoint's names. The on-disk key of a factor is
//! `base_model.model.<path>.lora_A.weight` (`[r, in]`) or `.lora_B.weight` (`[out, r]`).
//!
//! Conventions copied from PEFT 0.21 (`huggingface/peft`):
//! - `src/peft/tuners/lora/layer.py`: `LoraLayer.update_layer` (scaling `alpha / r` or
//!   `alpha / √r`), `reset_lora_parameters` (kaiming-uniform A with a = √5, zero B), `Linear.forward`
//!   (update scaled after B), `get_delta_weight` / `merge` / `unmerge`;
//! - `src/peft/tuners/lora/config.py`: `LoraConfig` fields and defaults;
//! - `src/peft/tuners/tuners_utils.py`: `check_target_module_exists`;
//! - `src/peft/utils/other.py`: `get_pattern_key` (`rank_pattern`, `alpha_pattern`);
//! - `src/peft/utils/save_and_load.py` and `src/peft/utils/constants.py`: key names and files;
//! - `src/peft/config.py`: `save_pretrained` (sorted keys, indent 2, `inference_mode: true`).
//!
//! From VILA (`NVlabs/VILA`), `llava/train/train.py`: `find_all_linear_names` and
//! `get_peft_state_non_lora_maybe_zero_3` (the non-LoRA trainables file).
//!
//! From PyTorch: `torch/serialization.py` and `torch/_utils.py::_rebuild_tensor_v2` (the `.bin`
//! layout read by the restricted unpickler).
#![warn(missing_docs)]

mod config;
mod error;
mod factors;
mod full_tune;
mod init;
mod linear;
mod peft_io;
mod pickle;
mod target;
mod tensor_file;
mod torch_zip;
mod trainables;
mod walk;

pub use config::{AdapterConfig, InitLoraWeights, OneOrMany, Patterns};
pub use error::LoraError;
pub use factors::{Factor, LoraFactors, PEFT_KEY_PREFIX, lora_a_key, lora_b_key, parse_lora_key};
pub use full_tune::{FlatParam, flat_trainables, make_trainable, set_flat, take_flat_grads};
pub use init::{LoraInit, module_seed};
pub use linear::{LoraLinear, LoraLinearConfig};
pub use peft_io::{ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, PeftAdapter};
pub use target::{ModuleInfo, TargetModules, TargetSelector, find_all_linear_names};
pub use trainables::{
    NON_LORA_TRAINABLES_BIN, NON_LORA_TRAINABLES_FILE, apply_non_lora_trainables,
    load_non_lora_trainables, non_lora_trainables, save_non_lora_trainables,
};

/// A `ParamGroup` of every LoRA factor (`*.lora_A.weight`, `*.lora_B.weight`), e.g. for an
/// optimizer group or `unfreeze_group`.
pub fn lora_param_group() -> burn::module::ParamGroup {
    burn::module::ParamGroup::from_any_predicates(vec!["lora_A.weight", "lora_B.weight"])
}
