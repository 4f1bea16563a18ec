//! Trainable parameters outside the adapters (e.g. a projector tuned with LoRA), saved beside the
//! adapter as VILA does (`llava/train/train.py::get_peft_state_non_lora_maybe_zero_3`), but as
//! safetensors: `non_lora_trainables.safetensors`. VILA's own `non_lora_trainables.bin` (a
//! `torch.save` pickle) is read by a restricted interpreter that never executes it.
//!
//! Keys are PyTorch's: `base_model.model.<path>` with torch layouts, so a burn `Linear` weight
//! (`[in, out]`) is transposed to `[out, in]`, norm `gamma` / `beta` are called `weight` / `bias`,
//! and a [`LoraLinear`](crate::LoraLinear)'s `base` is PEFT's `base_layer`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::TensorData;

use crate::error::LoraError;
use crate::factors::{PEFT_KEY_PREFIX, is_float_dtype, transpose_2d};
use crate::pickle::load_torch_file;
use crate::tensor_file::{read_tensors, write_tensors};
use crate::walk::{ParamInfo, list_params, read_params, replace_params};

/// The file this crate writes.
pub const NON_LORA_TRAINABLES_FILE: &str = "non_lora_trainables.safetensors";
/// The file VILA writes (a `torch.save` zip), readable by [`load_non_lora_trainables`].
pub const NON_LORA_TRAINABLES_BIN: &str = "non_lora_trainables.bin";

pub(crate) fn is_lora_factor(path: &str) -> bool {
    let field = path.rsplit('.').nth(1).unwrap_or_default();
    field == "lora_A" || field == "lora_B"
}

/// PyTorch's name for a burn parameter (without prefix), and whether its data is transposed.
pub(crate) fn torch_name(param: &ParamInfo) -> (String, bool) {
    let mut names: Vec<String> = param.path.split('.').map(str::to_string).collect();
    let last = names.len().saturating_sub(1);
    let owner = param.owner.strip_prefix("Struct:").unwrap_or(&param.owner);
    let mut transpose = false;
    if let Some(field) = names.last_mut() {
        if owner == "Linear" && field == "weight" && param.dims.len() == 2 {
            transpose = true;
        } else if owner.ends_with("Norm") && field == "gamma" {
            *field = "weight".into();
        } else if owner.ends_with("Norm") && field == "beta" {
            *field = "bias".into();
        }
    }
    // `<path>.base.weight` inside a LoraLinear is PEFT's `<path>.base_layer.weight`.
    for (i, segment) in param.segment_owners.iter().enumerate().take(last) {
        if segment == "Struct:LoraLinear" && names[i] == "base" {
            names[i] = "base_layer".into();
        }
    }
    (names.join("."), transpose)
}

/// Every parameter of `module` that autodiff tracks, except LoRA factors, under PyTorch's keys
/// and layouts (`base_model.model.<path>`). Call it on the training model (an autodiff device):
/// on a plain device nothing is tracked and the map is empty.
pub fn non_lora_trainables<M: Module>(
    module: &M,
) -> Result<BTreeMap<String, TensorData>, LoraError> {
    let params: Vec<ParamInfo> = list_params(module)
        .into_iter()
        .filter(|p| p.require_grad && !is_lora_factor(&p.path))
        .collect();
    let mut values = read_params(module, params.iter().map(|p| p.path.clone()))?;
    let mut out = BTreeMap::new();
    for param in &params {
        if let Some(data) = values.remove(&param.path) {
            let (name, transpose) = torch_name(param);
            let data = if transpose { transpose_2d(&data) } else { data };
            out.insert(format!("{PEFT_KEY_PREFIX}{name}"), data);
        }
    }
    Ok(out)
}

/// Loads tensors saved by [`non_lora_trainables`] (or VILA) into `module`, by PyTorch name.
/// Keys may carry the `base_model.model.` prefix or not. Parameters not in `tensors` are left as
/// they are (VILA loads with `strict=False`); values take each parameter's dtype.
///
/// # Errors
///
/// [`LoraError::UnknownModules`] for keys the module does not have, [`LoraError::BadTensor`] for
/// a shape that does not match; `source` names the file.
pub fn apply_non_lora_trainables<M: Module>(
    module: M,
    tensors: &BTreeMap<String, TensorData>,
    source: &Path,
) -> Result<M, LoraError> {
    let by_name: BTreeMap<String, (ParamInfo, bool)> = list_params(&module)
        .into_iter()
        .map(|p| {
            let (name, transpose) = torch_name(&p);
            (name, (p, transpose))
        })
        .collect();
    let mut unknown = Vec::new();
    let mut values = BTreeMap::new();
    for (key, data) in tensors {
        let name = key.strip_prefix(PEFT_KEY_PREFIX).unwrap_or(key);
        let Some((param, transpose)) = by_name.get(name) else {
            unknown.push(key.clone());
            continue;
        };
        let bad = |message: String| LoraError::BadTensor {
            path: source.to_path_buf(),
            key: key.clone(),
            message,
        };
        if !is_float_dtype(data.dtype()) {
            return Err(bad(format!("dtype {:?}; expected a float", data.dtype())));
        }
        let data = if *transpose && data.shape().num_dims() == 2 {
            transpose_2d(data)
        } else {
            data.clone()
        };
        if data.shape().as_slice() != param.dims.as_slice() {
            let mut expected = param.dims.clone();
            if *transpose {
                expected.reverse();
            }
            let got = if *transpose {
                tensors[key].shape().as_slice().to_vec()
            } else {
                data.shape().as_slice().to_vec()
            };
            return Err(bad(format!("shape {got:?}, the model has {expected:?}")));
        }
        values.insert(param.path.clone(), data);
    }
    if !unknown.is_empty() {
        return Err(LoraError::UnknownModules {
            path: source.to_path_buf(),
            keys: unknown,
        });
    }
    tracing::debug!(source = %source.display(), tensors = values.len(), "loaded non-LoRA trainables");
    Ok(replace_params(module, values))
}

/// Writes non-LoRA trainables as safetensors, atomically (an empty map gives a valid file).
pub fn save_non_lora_trainables(
    path: &Path,
    tensors: &BTreeMap<String, TensorData>,
) -> Result<(), LoraError> {
    write_tensors(path, tensors)
}

/// Reads non-LoRA trainables: safetensors, or for a `.bin` / `.pt` / `.pth` file a `torch.save`d
/// dict of f32 / bf16 / f16 tensors, read without executing the pickle.
pub fn load_non_lora_trainables(path: &Path) -> Result<BTreeMap<String, TensorData>, LoraError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    if matches!(extension, "bin" | "pt" | "pth") {
        load_torch_file(path)
    } else {
        read_tensors(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(path: &str, owners: &[&str], dims: &[usize]) -> ParamInfo {
        ParamInfo {
            path: path.into(),
            owner: owners.last().unwrap().to_string(),
            segment_owners: owners.iter().map(|s| s.to_string()).collect(),
            dims: dims.to_vec(),
            require_grad: true,
        }
    }

    #[test]
    fn torch_names() {
        let linear = info(
            "mm.layers.1.weight",
            &["Struct:M", "Struct:P", "Vec", "Struct:Linear"],
            &[3, 4],
        );
        assert_eq!(torch_name(&linear), ("mm.layers.1.weight".into(), true));
        let bias = info(
            "mm.layers.1.bias",
            &["Struct:M", "Struct:P", "Vec", "Struct:Linear"],
            &[4],
        );
        assert_eq!(torch_name(&bias), ("mm.layers.1.bias".into(), false));
        let norm = info(
            "mm.ln.gamma",
            &["Struct:M", "Struct:P", "Struct:LayerNorm"],
            &[4],
        );
        assert_eq!(torch_name(&norm), ("mm.ln.weight".into(), false));
        let base = info(
            "q.base.weight",
            &["Struct:M", "Struct:LoraLinear", "Struct:Linear"],
            &[4, 4],
        );
        assert_eq!(torch_name(&base), ("q.base_layer.weight".into(), true));
        assert!(is_lora_factor("a.q.lora_A.weight"));
        assert!(!is_lora_factor("a.q.base.weight"));
    }
}
