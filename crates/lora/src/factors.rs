//! One module's adapter as PEFT stores it: key names and the `[r, in]` / `[out, r]` factors
//! (`peft/utils/save_and_load.py::get_peft_model_state_dict`, which strips the adapter name).

use std::path::Path;

use burn::tensor::{DType, TensorData};

use crate::error::LoraError;

/// The prefix PEFT puts before every module path in `adapter_model.safetensors`
/// (`PeftModel.base_model` is the tuner, whose `.model` is the wrapped model).
pub const PEFT_KEY_PREFIX: &str = "base_model.model.";

/// `base_model.model.<module_path>.lora_A.weight`, the key of the `[r, in]` factor.
pub fn lora_a_key(module_path: &str) -> String {
    format!("{PEFT_KEY_PREFIX}{module_path}.lora_A.weight")
}

/// `base_model.model.<module_path>.lora_B.weight`, the key of the `[out, r]` factor.
pub fn lora_b_key(module_path: &str) -> String {
    format!("{PEFT_KEY_PREFIX}{module_path}.lora_B.weight")
}

/// Which factor a PEFT key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// `lora_A.weight`, `[r, in]`.
    A,
    /// `lora_B.weight`, `[out, r]`.
    B,
}

/// Splits `base_model.model.<path>.lora_{A,B}.weight` into the module path and the factor.
pub fn parse_lora_key(key: &str) -> Option<(&str, Factor)> {
    let rest = key.strip_prefix(PEFT_KEY_PREFIX)?;
    if let Some(path) = rest.strip_suffix(".lora_A.weight") {
        Some((path, Factor::A))
    } else {
        rest.strip_suffix(".lora_B.weight")
            .map(|path| (path, Factor::B))
    }
    .filter(|(path, _)| !path.is_empty())
}

/// One module's low-rank factors in PEFT's layout (torch `nn.Linear` weights, `[out, in]`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraFactors {
    /// `lora_A.weight`: `[r, d_input]`.
    pub lora_a: TensorData,
    /// `lora_B.weight`: `[d_output, r]`.
    pub lora_b: TensorData,
}

/// The dtypes adapter and trainable tensors may have on disk.
pub(crate) fn is_float_dtype(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::BF16 | DType::F16)
}

impl LoraFactors {
    /// Checks that both factors are 2-D floats of rank `r`, and, when given, that they fit a base
    /// layer `d_input -> d_output`. `source` and `module` name the culprit in the error.
    pub(crate) fn check(
        &self,
        r: usize,
        base: Option<[usize; 2]>,
        source: &Path,
        module: &str,
    ) -> Result<(), LoraError> {
        let bad = |key: String, message: String| LoraError::BadTensor {
            path: source.to_path_buf(),
            key,
            message,
        };
        for (data, key) in [
            (&self.lora_a, lora_a_key(module)),
            (&self.lora_b, lora_b_key(module)),
        ] {
            if !is_float_dtype(data.dtype()) {
                return Err(bad(
                    key,
                    format!("dtype {:?}; expected F32, BF16 or F16", data.dtype()),
                ));
            }
            if data.shape().num_dims() != 2 {
                return Err(bad(
                    key,
                    format!("shape {:?}; expected a matrix", data.shape().as_slice()),
                ));
            }
        }
        let a = self.lora_a.shape().as_slice();
        let b = self.lora_b.shape().as_slice();
        if a[0] != r {
            return Err(bad(
                lora_a_key(module),
                format!("shape {a:?} has rank {}, but r = {r}", a[0]),
            ));
        }
        if b[1] != r {
            return Err(bad(
                lora_b_key(module),
                format!("shape {b:?} has rank {}, but r = {r}", b[1]),
            ));
        }
        if let Some([d_in, d_out]) = base {
            if a[1] != d_in {
                return Err(bad(
                    lora_a_key(module),
                    format!(
                        "shape {a:?}, but the base layer takes {d_in} inputs (expected [{r}, {d_in}])"
                    ),
                ));
            }
            if b[0] != d_out {
                return Err(bad(
                    lora_b_key(module),
                    format!(
                        "shape {b:?}, but the base layer has {d_out} outputs (expected [{d_out}, {r}])"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The transpose of a 2-D tensor's data, in the same dtype (a byte shuffle, exact).
///
/// Callers have checked the rank; a non-2-D input is returned unchanged.
pub(crate) fn transpose_2d(data: &TensorData) -> TensorData {
    let &[rows, cols] = data.shape().as_slice() else {
        return data.clone();
    };
    let size = data.dtype().size();
    let bytes = data.as_bytes();
    let mut out = vec![0u8; bytes.len()];
    for r in 0..rows {
        for c in 0..cols {
            let from = (r * cols + c) * size;
            let to = (c * rows + r) * size;
            out[to..to + size].copy_from_slice(&bytes[from..from + size]);
        }
    }
    TensorData::from_bytes_vec(out, [cols, rows], data.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let a = lora_a_key("llm.model.layers.0.self_attn.q_proj");
        assert_eq!(
            a,
            "base_model.model.llm.model.layers.0.self_attn.q_proj.lora_A.weight"
        );
        assert_eq!(
            parse_lora_key(&a),
            Some(("llm.model.layers.0.self_attn.q_proj", Factor::A))
        );
        assert_eq!(parse_lora_key(&lora_b_key("fc")), Some(("fc", Factor::B)));
        assert_eq!(parse_lora_key("base_model.model.fc.weight"), None);
        assert_eq!(parse_lora_key("fc.lora_A.weight"), None);
        assert_eq!(parse_lora_key("base_model.model..lora_A.weight"), None);
    }

    #[test]
    fn transpose_is_exact() {
        let data = TensorData::new(vec![1f32, 2., 3., 4., 5., 6.], [2, 3]);
        let t = transpose_2d(&data);
        assert_eq!(t.shape().as_slice(), &[3, 2]);
        assert_eq!(t.try_to_vec::<f32>().unwrap(), vec![1., 4., 2., 5., 3., 6.]);
        assert_eq!(transpose_2d(&t), data);
    }

    #[test]
    fn check_names_module_and_shapes() {
        let factors = LoraFactors {
            lora_a: TensorData::zeros::<f32, _>([2, 5]),
            lora_b: TensorData::zeros::<f32, _>([3, 2]),
        };
        let src = Path::new("a/adapter_model.safetensors");
        assert!(factors.check(2, Some([5, 3]), src, "fc").is_ok());
        let e = factors.check(4, None, src, "fc").unwrap_err().to_string();
        assert!(e.contains("fc.lora_A.weight") && e.contains("r = 4"), "{e}");
        let e = factors
            .check(2, Some([6, 3]), src, "fc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("takes 6 inputs"), "{e}");
        let e = factors
            .check(2, Some([5, 4]), src, "fc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lora_B") && e.contains("4 outputs"), "{e}");
        let ints = LoraFactors {
            lora_a: TensorData::zeros::<i32, _>([2, 5]),
            ..factors
        };
        let e = ints.check(2, None, src, "fc").unwrap_err().to_string();
        assert!(e.contains("dtype"), "{e}");
    }
}
