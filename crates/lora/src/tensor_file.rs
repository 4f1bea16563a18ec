//! Whole-file safetensors reads and atomic writes of small tensor sets (adapters, trainables).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use burn::tensor::{DType, TensorData};
use safetensors::tensor::{Dtype, TensorView};

use crate::error::LoraError;
use crate::factors::is_float_dtype;

fn burn_dtype(dtype: Dtype) -> Option<DType> {
    match dtype {
        Dtype::F32 => Some(DType::F32),
        Dtype::BF16 => Some(DType::BF16),
        Dtype::F16 => Some(DType::F16),
        _ => None,
    }
}

fn file_dtype(dtype: DType) -> Option<Dtype> {
    match dtype {
        DType::F32 => Some(Dtype::F32),
        DType::BF16 => Some(Dtype::BF16),
        DType::F16 => Some(Dtype::F16),
        _ => None,
    }
}

/// Writes `bytes` to a temporary sibling of `path`, flushes it, and renames it over `path`, so a
/// reader never sees a half-written file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LoraError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if let Err(source) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(LoraError::Io { path: tmp, source });
    }
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        LoraError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Every tensor of a safetensors file; only f32 / bf16 / f16 are accepted.
pub(crate) fn read_tensors(path: &Path) -> Result<BTreeMap<String, TensorData>, LoraError> {
    let bytes = std::fs::read(path).map_err(LoraError::io(path))?;
    let file =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| LoraError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let mut tensors = BTreeMap::new();
    for (key, view) in file.iter() {
        let dtype = burn_dtype(view.dtype()).ok_or_else(|| LoraError::BadTensor {
            path: path.to_path_buf(),
            key: key.to_string(),
            message: format!("dtype {:?}; expected F32, BF16 or F16", view.dtype()),
        })?;
        let data = TensorData::try_from_bytes_vec(view.data().to_vec(), view.shape(), dtype)
            .map_err(|e| LoraError::BadTensor {
                path: path.to_path_buf(),
                key: key.to_string(),
                message: e.to_string(),
            })?;
        tensors.insert(key.to_string(), data);
    }
    Ok(tensors)
}

/// Writes `tensors` as safetensors with PEFT's metadata (`{"format": "pt"}`), atomically.
pub(crate) fn write_tensors(
    path: &Path,
    tensors: &BTreeMap<String, TensorData>,
) -> Result<(), LoraError> {
    let mut views = Vec::with_capacity(tensors.len());
    for (key, data) in tensors {
        let bad = |message: String| LoraError::BadTensor {
            path: path.to_path_buf(),
            key: key.clone(),
            message,
        };
        let dtype = file_dtype(data.dtype())
            .filter(|_| is_float_dtype(data.dtype()))
            .ok_or_else(|| {
                bad(format!(
                    "dtype {:?}; expected F32, BF16 or F16",
                    data.dtype()
                ))
            })?;
        let view = TensorView::new(dtype, data.shape().as_slice().to_vec(), data.as_bytes())
            .map_err(|e| bad(e.to_string()))?;
        views.push((key.as_str(), view));
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes =
        safetensors::serialize(views, Some(metadata)).map_err(|e| LoraError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_bit_exact_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let tensors = BTreeMap::from([
            (
                "a".to_string(),
                TensorData::new(vec![1.5f32, -2.0, 3.25], [3, 1]),
            ),
            (
                "b".to_string(),
                TensorData::new(vec![1.5f32, 7.0], [2]).convert_dtype(DType::BF16),
            ),
        ]);
        write_tensors(&path, &tensors).unwrap();
        assert_eq!(read_tensors(&path).unwrap(), tensors);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["t.safetensors"]);
    }

    #[test]
    fn corrupt_and_integer_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
        let e = read_tensors(&path).unwrap_err().to_string();
        assert!(
            e.contains("bad.safetensors") && e.contains("safetensors"),
            "{e}"
        );
        let ints = BTreeMap::from([("i".to_string(), TensorData::new(vec![1i32], [1]))]);
        let e = write_tensors(&path, &ints).unwrap_err().to_string();
        assert!(e.contains("tensor i") && e.contains("dtype"), "{e}");
        let missing = read_tensors(&dir.path().join("none.safetensors")).unwrap_err();
        assert!(matches!(missing, LoraError::Io { .. }), "{missing}");
    }
}
