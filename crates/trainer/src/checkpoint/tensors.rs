//! f32 tensors by name in safetensors form: the format of optimizer state and other tensor
//! files inside a checkpoint.
//!
//! Values are stored exactly (little-endian IEEE f32), so a save → load round trip is bit-exact
//! and a resumed run continues from the very same numbers. The safetensors writer orders tensors
//! by name, so equal content gives byte-equal files.
//!
//! `__metadata__` holds at most one entry: the safetensors crate keeps metadata in a `HashMap`,
//! whose order (and hence the file's bytes) is not stable with more than one key.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::{DType, Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};

/// Problems with tensor files; wrapped with the file name by the callers that know it.
#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    /// The safetensors bytes do not parse.
    #[error("not a valid safetensors file: {0}")]
    Format(String),
    /// A tensor is stored with a dtype other than f32.
    #[error("tensor {name}: dtype {dtype}, expected F32")]
    Dtype { name: String, dtype: String },
    /// A tensor's value count does not match its shape.
    #[error("tensor {name}: {values} values do not fill shape {shape:?}")]
    Shape {
        name: String,
        shape: Vec<usize>,
        values: usize,
    },
    /// A tensor has a different rank than the caller asked for.
    #[error("tensor {name}: rank {found}, expected {expected}")]
    Rank {
        name: String,
        found: usize,
        expected: usize,
    },
    /// A tensor could not be read back from the device as f32.
    #[error("tensor {name}: cannot read values: {message}")]
    Read { name: String, message: String },
    /// Two tensors share a name.
    #[error("tensor {0} appears twice")]
    Duplicate(String),
}

/// One f32 tensor on the host, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Key in the file.
    pub name: String,
    /// Dimensions, outermost first (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Row-major values; `shape.iter().product()` of them.
    pub values: Vec<f32>,
}

impl NamedTensor {
    /// A tensor from host values; fails when `values` does not fill `shape`.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        values: Vec<f32>,
    ) -> Result<Self, TensorFileError> {
        let name = name.into();
        if shape.iter().product::<usize>() != values.len() {
            return Err(TensorFileError::Shape {
                name,
                shape,
                values: values.len(),
            });
        }
        Ok(Self {
            name,
            shape,
            values,
        })
    }

    /// Copies a burn tensor to the host as f32 (casting from its dtype if needed).
    pub fn from_tensor<const D: usize>(
        name: impl Into<String>,
        tensor: Tensor<D>,
    ) -> Result<Self, TensorFileError> {
        let name = name.into();
        let shape = tensor.dims().to_vec();
        let tensor = if tensor.dtype() == DType::F32 {
            tensor
        } else {
            tensor.cast(DType::F32)
        };
        let values =
            tensor
                .into_data()
                .try_into_vec::<f32>()
                .map_err(|e| TensorFileError::Read {
                    name: name.clone(),
                    message: format!("{e:?}"),
                })?;
        Self::new(name, shape, values)
    }

    /// Uploads to `device` as an f32 tensor of rank `D`.
    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Result<Tensor<D>, TensorFileError> {
        if self.shape.len() != D {
            return Err(TensorFileError::Rank {
                name: self.name.clone(),
                found: self.shape.len(),
                expected: D,
            });
        }
        let data = TensorData::new(self.values.clone(), self.shape.clone());
        Ok(Tensor::from_data(data, (device, DType::F32)))
    }
}

/// Encodes tensors as safetensors bytes, with an optional single `__metadata__` entry.
pub fn encode_safetensors(
    tensors: &[NamedTensor],
    metadata: Option<(&str, &str)>,
) -> Result<Vec<u8>, TensorFileError> {
    let mut seen = std::collections::BTreeSet::new();
    for tensor in tensors {
        if !seen.insert(tensor.name.as_str()) {
            return Err(TensorFileError::Duplicate(tensor.name.clone()));
        }
    }
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|view| (t.name.as_str(), view))
                .map_err(|e| TensorFileError::Format(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = metadata.map(|(k, v)| HashMap::from([(k.to_string(), v.to_string())]));
    safetensors::serialize(views, metadata).map_err(|e| TensorFileError::Format(e.to_string()))
}

/// Tensors and metadata read from a safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedTensors {
    /// The tensors, sorted by name.
    pub tensors: Vec<NamedTensor>,
    /// The `__metadata__` map (empty when absent).
    pub metadata: HashMap<String, String>,
}

impl DecodedTensors {
    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.tensors[i])
    }
}

/// Decodes safetensors bytes; every tensor must be f32.
pub fn decode_safetensors(bytes: &[u8]) -> Result<DecodedTensors, TensorFileError> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| TensorFileError::Format(e.to_string()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| TensorFileError::Format(e.to_string()))?;
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(TensorFileError::Dtype {
                name,
                dtype: format!("{:?}", view.dtype()),
            });
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.push(NamedTensor::new(name, view.shape().to_vec(), values)?);
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(DecodedTensors { tensors, metadata })
}

/// Reads and decodes a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<DecodedTensors, super::CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| super::CheckpointError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    decode_safetensors(&bytes).map_err(|source| super::CheckpointError::Tensors {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_bit_exact_and_byte_stable() {
        let tensors = vec![
            NamedTensor::new("b", vec![2], vec![f32::MIN_POSITIVE, -0.0]).unwrap(),
            NamedTensor::new("a.step", vec![], vec![3.0]).unwrap(),
            NamedTensor::new("a", vec![1, 3], vec![1.0 / 3.0, f32::NAN, 1e-38]).unwrap(),
        ];
        let bytes = encode_safetensors(&tensors, Some(("format", "pt"))).unwrap();
        let again = encode_safetensors(&tensors, Some(("format", "pt"))).unwrap();
        assert_eq!(bytes, again);
        let decoded = decode_safetensors(&bytes).unwrap();
        assert_eq!(
            decoded.metadata.get("format").map(String::as_str),
            Some("pt")
        );
        let a = decoded.get("a").unwrap();
        assert_eq!(a.shape, vec![1, 3]);
        let bits: Vec<u32> = a.values.iter().map(|v| v.to_bits()).collect();
        let want: Vec<u32> = [1.0f32 / 3.0, f32::NAN, 1e-38]
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(bits, want);
        assert_eq!(decoded.get("a.step").unwrap().shape, Vec::<usize>::new());
        assert_eq!(
            decoded.get("b").unwrap().values[1].to_bits(),
            (-0.0f32).to_bits()
        );
    }

    #[test]
    fn rejects_mismatched_shapes_duplicates_and_garbage() {
        assert!(matches!(
            NamedTensor::new("x", vec![2, 2], vec![0.0; 3]),
            Err(TensorFileError::Shape { .. })
        ));
        let t = NamedTensor::new("x", vec![1], vec![0.0]).unwrap();
        assert!(matches!(
            encode_safetensors(&[t.clone(), t], None),
            Err(TensorFileError::Duplicate(_))
        ));
        assert!(matches!(
            decode_safetensors(b"garbage"),
            Err(TensorFileError::Format(_))
        ));
    }

    #[test]
    fn burn_tensor_round_trip() {
        let device = Device::flex();
        let t = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]),
            (&device, DType::F32),
        );
        let named = NamedTensor::from_tensor("w", t).unwrap();
        assert_eq!(named.shape, vec![2, 3]);
        let back: Tensor<2> = named.to_tensor(&device).unwrap();
        assert_eq!(back.dims(), [2, 3]);
        assert!(matches!(
            named.to_tensor::<1>(&device),
            Err(TensorFileError::Rank { .. })
        ));
    }
}
