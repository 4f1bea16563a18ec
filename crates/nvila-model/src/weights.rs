//! The only code that reads checkpoint files: memory-mapped safetensors, one file or HF shards
//! (`model.safetensors.index.json`), handed out by HF key as burn tensors.
//!
//! Modelled on candle's `VarBuilder`: modules build themselves by walking the checkpoint tree
//! with [`Weights::pp`] ("push prefix") and take tensors by the names the checkpoint uses, so
//! module fields carry the checkpoint's names and no renaming table exists. Every key handed out
//! is recorded; [`Weights::unused_keys`] / [`Weights::finish`] report what the model left over.
//!
//! Tensors keep the file's dtype (bf16 stays bf16) unless a dtype is asked for. The files are
//! memory-mapped only to parse and validate their headers; tensor bytes are read with `pread`
//! into a buffer that lives until the upload. Host memory therefore stays far below the
//! checkpoint size: only the tensor being uploaded is held. Copying out of the map instead would
//! leave every touched page resident in the process (`RssFile`): loading the 16 GB NVILA-Lite-8B
//! shape peaked at 18.9 GB `VmHWM` that way (docs/gpu.md, 2026-11-29), while pages read with
//! `pread` belong to the kernel's page cache, not to the process.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear, PaddingConfig2d};
use burn::tensor::{DType, Device, Tensor, TensorData};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, TensorInfo};

use crate::error::ModelError;

/// Single-file checkpoint name (HF `save_pretrained`).
pub const SINGLE_FILE: &str = "model.safetensors";
/// Sharded checkpoint index (HF `save_pretrained` with `max_shard_size`).
pub const INDEX_FILE: &str = "model.safetensors.index.json";

struct Shard {
    path: PathBuf,
    /// For `pread` of tensor bytes.
    file: std::fs::File,
    /// For the header and the bounds of the file; its data pages are never touched.
    map: Mmap,
    /// Offset of the data section (8-byte length + JSON header).
    data_start: usize,
}

struct Store {
    dir: PathBuf,
    shards: Vec<Shard>,
    tensors: HashMap<String, (usize, TensorInfo)>,
    used: Mutex<BTreeSet<String>>,
}

/// A view of a checkpoint folder under a key prefix, on a device, with an optional dtype.
#[derive(Clone)]
pub struct Weights {
    store: Arc<Store>,
    prefix: String,
    device: Device,
    dtype: Option<DType>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `model.safetensors.index.json`: `{"weight_map": {"key": "model-00001-of-00002.safetensors"}}`.
fn shard_names(index: &Path) -> Result<Vec<String>, ModelError> {
    let text = std::fs::read_to_string(index).map_err(io_err(index))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Json {
        path: index.to_path_buf(),
        message: format!("malformed JSON: {e}"),
    })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::Json {
            path: index.to_path_buf(),
            message: "no \"weight_map\" object".into(),
        })?;
    let mut names = BTreeSet::new();
    for (key, file) in map {
        let file = file.as_str().ok_or_else(|| ModelError::Json {
            path: index.to_path_buf(),
            message: format!("weight_map[{key:?}] is not a file name"),
        })?;
        names.insert(file.to_string());
    }
    Ok(names.into_iter().collect())
}

fn open_shard(path: &Path) -> Result<Shard, ModelError> {
    let file = std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::Missing {
                path: path.to_path_buf(),
                what: "safetensors shard".into(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    // SAFETY: the checkpoint is opened read-only and must not be modified while the model
    // loads (the same contract as HF `safe_open` / candle's mmaped loader). Mapping instead of
    // reading is what keeps host memory far below the checkpoint size.
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
    let (header, _) =
        safetensors::SafeTensors::read_metadata(&map).map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(Shard {
        path: path.to_path_buf(),
        file,
        map,
        data_start: 8 + header,
    })
}

/// The bytes of `range` of the shard's file, read with `pread` (see the module docs for why not
/// from the map).
#[cfg(unix)]
fn read_range(shard: &Shard, range: std::ops::Range<usize>) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; range.len()];
    shard.file.read_exact_at(&mut bytes, range.start as u64)?;
    Ok(bytes)
}

/// Elsewhere, a copy out of the map.
#[cfg(not(unix))]
fn read_range(shard: &Shard, range: std::ops::Range<usize>) -> std::io::Result<Vec<u8>> {
    Ok(shard.map[range].to_vec())
}

fn burn_dtype(dtype: Dtype) -> Option<DType> {
    match dtype {
        Dtype::BF16 => Some(DType::BF16),
        Dtype::F16 => Some(DType::F16),
        Dtype::F32 => Some(DType::F32),
        Dtype::F64 => Some(DType::F64),
        _ => None,
    }
}

impl Weights {
    /// Opens the checkpoint in `dir`: `model.safetensors.index.json` with its shards if present,
    /// else `model.safetensors`. `dtype` converts every tensor on upload; `None` keeps the file's.
    pub fn open(dir: &Path, device: &Device, dtype: Option<DType>) -> Result<Weights, ModelError> {
        if !dir.is_dir() {
            return Err(ModelError::Missing {
                path: dir.to_path_buf(),
                what: "checkpoint folder".into(),
            });
        }
        let index = dir.join(INDEX_FILE);
        let files: Vec<PathBuf> = if index.is_file() {
            shard_names(&index)?
                .into_iter()
                .map(|f| dir.join(f))
                .collect()
        } else if dir.join(SINGLE_FILE).is_file() {
            vec![dir.join(SINGLE_FILE)]
        } else {
            return Err(ModelError::Missing {
                path: dir.join(SINGLE_FILE),
                what: format!("neither {SINGLE_FILE} nor {INDEX_FILE} is present"),
            });
        };
        Self::from_files(dir, &files, device, dtype)
    }

    /// Opens explicit safetensors files as one checkpoint rooted at `dir`.
    pub fn from_files(
        dir: &Path,
        files: &[PathBuf],
        device: &Device,
        dtype: Option<DType>,
    ) -> Result<Weights, ModelError> {
        let mut shards = Vec::with_capacity(files.len());
        let mut tensors = HashMap::new();
        for (i, path) in files.iter().enumerate() {
            let shard = open_shard(path)?;
            let (_, meta) = safetensors::SafeTensors::read_metadata(&shard.map).map_err(|e| {
                ModelError::Safetensors {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?;
            for (name, info) in meta.tensors() {
                tensors.insert(name, (i, info.clone()));
            }
            shards.push(shard);
        }
        Ok(Weights {
            store: Arc::new(Store {
                dir: dir.to_path_buf(),
                shards,
                tensors,
                used: Mutex::new(BTreeSet::new()),
            }),
            prefix: String::new(),
            device: device.clone(),
            dtype,
        })
    }

    /// The same checkpoint under `prefix.name`.
    pub fn pp(&self, name: impl AsRef<str>) -> Weights {
        let name = name.as_ref();
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Weights {
            prefix,
            ..self.clone()
        }
    }

    /// The same checkpoint, converting tensors to `dtype` (`None`: the file's dtype).
    pub fn with_dtype(&self, dtype: Option<DType>) -> Weights {
        Weights {
            dtype,
            ..self.clone()
        }
    }

    /// The device tensors are uploaded to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The checkpoint folder.
    pub fn dir(&self) -> &Path {
        &self.store.dir
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Whether the checkpoint has `prefix.name`.
    pub fn contains(&self, name: &str) -> bool {
        self.store.tensors.contains_key(&self.key(name))
    }

    /// The file's shape of `prefix.name`, if present.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.store
            .tensors
            .get(&self.key(name))
            .map(|(_, info)| info.shape.clone())
    }

    /// Takes `prefix.name`, checking its shape, as a tensor on the device.
    pub fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, ModelError> {
        let key = self.key(name);
        let (shard_idx, info) =
            self.store
                .tensors
                .get(&key)
                .ok_or_else(|| ModelError::MissingKeys {
                    path: self.store.dir.clone(),
                    keys: vec![key.clone()],
                })?;
        let shard = &self.store.shards[*shard_idx];
        if info.shape.as_slice() != shape.as_slice() {
            return Err(ModelError::BadTensor {
                path: shard.path.clone(),
                key,
                message: format!("shape {:?}, expected {:?}", info.shape, shape),
            });
        }
        let file_dtype = burn_dtype(info.dtype).ok_or_else(|| ModelError::BadTensor {
            path: shard.path.clone(),
            key: key.clone(),
            message: format!("unsupported dtype {:?} (expected a float type)", info.dtype),
        })?;
        let (start, end) = info.data_offsets;
        let range = shard.data_start + start..shard.data_start + end;
        let outside = || ModelError::Safetensors {
            path: shard.path.clone(),
            message: format!("tensor {key} lies outside the file (truncated?)"),
        };
        if range.end > shard.map.len() {
            return Err(outside());
        }
        let bytes = read_range(shard, range).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => outside(),
            _ => ModelError::Io {
                path: shard.path.clone(),
                source: e,
            },
        })?;
        let data = TensorData::from_bytes_vec(bytes, shape, file_dtype);
        let dtype = self.dtype.unwrap_or(file_dtype);
        let tensor = Tensor::<D>::from_data(data, (&self.device, file_dtype));
        let tensor = if dtype == file_dtype {
            tensor
        } else {
            tensor.cast(dtype)
        };
        if let Ok(mut used) = self.store.used.lock() {
            used.insert(key);
        }
        Ok(tensor)
    }

    /// An HF `nn.Linear` at `prefix.name` (`weight [out, in]`, optional `bias [out]`), as burn's
    /// [`Linear`], whose weight is `[in, out]`: the transpose is a view, not a copy.
    pub fn linear(
        &self,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Linear, ModelError> {
        let w = self.pp(name);
        let weight = w.tensor::<2>("weight", [d_out, d_in])?.transpose();
        let bias = if bias {
            Some(Param::from_tensor(w.tensor::<1>("bias", [d_out])?))
        } else {
            None
        };
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias,
        })
    }

    /// An HF `nn.LayerNorm` at `prefix.name` (`weight`, `bias`).
    pub fn layer_norm(&self, name: &str, d: usize, eps: f64) -> Result<LayerNorm, ModelError> {
        let w = self.pp(name);
        let mut norm = LayerNormConfig::new(d).with_epsilon(eps).init(&self.device);
        norm.gamma = Param::from_tensor(w.tensor::<1>("weight", [d])?);
        norm.beta = Some(Param::from_tensor(w.tensor::<1>("bias", [d])?));
        Ok(norm)
    }

    /// An HF `nn.Embedding` at `prefix.name` (`weight [n, d]`).
    pub fn embedding(&self, name: &str, n: usize, d: usize) -> Result<Embedding, ModelError> {
        Ok(Embedding {
            weight: Param::from_tensor(self.pp(name).tensor::<2>("weight", [n, d])?),
        })
    }

    /// An HF `nn.Conv2d` at `prefix.name` with no padding, dilation 1 and one group (`weight
    /// [out, in, kh, kw]`, optional `bias [out]`), as burn's [`Conv2d`], whose weight layout is the
    /// same as torch's.
    pub fn conv2d(
        &self,
        name: &str,
        weight_shape: [usize; 4],
        stride: [usize; 2],
        bias: bool,
    ) -> Result<Conv2d, ModelError> {
        let w = self.pp(name);
        let weight = w.tensor::<4>("weight", weight_shape)?;
        let bias = if bias {
            Some(Param::from_tensor(
                w.tensor::<1>("bias", [weight_shape[0]])?,
            ))
        } else {
            None
        };
        Ok(Conv2d {
            weight: Param::from_tensor(weight),
            bias,
            stride,
            kernel_size: [weight_shape[2], weight_shape[3]],
            dilation: [1, 1],
            groups: 1,
            padding: PaddingConfig2d::Valid,
        })
    }

    /// Checkpoint keys no module has taken so far, sorted.
    pub fn unused_keys(&self) -> Vec<String> {
        let used = self
            .store
            .used
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default();
        let mut unused: Vec<String> = self
            .store
            .tensors
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect();
        unused.sort();
        unused
    }

    /// Errors with every unused key (except those matching `allowed`), so naming drift between
    /// the model and the checkpoint is caught at load time.
    pub fn finish(&self, allowed: impl Fn(&str) -> bool) -> Result<(), ModelError> {
        let unused: Vec<String> = self
            .unused_keys()
            .into_iter()
            .filter(|k| !allowed(k))
            .collect();
        if unused.is_empty() {
            Ok(())
        } else {
            Err(ModelError::UnusedKeys {
                path: self.store.dir.clone(),
                keys: unused,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn write(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
            .iter()
            .map(|(n, s, v)| (n.to_string(), f32_bytes(v), s.clone()))
            .collect();
        let views: Vec<(String, TensorView)> = bytes
            .iter()
            .map(|(n, b, s)| {
                (
                    n.clone(),
                    TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, path).unwrap();
    }

    #[test]
    fn sharded_checkpoint_loads_by_key_and_reports_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("a.safetensors"),
            &[("m.lin.weight", vec![3, 2], vec![1., 2., 3., 4., 5., 6.])],
        );
        write(
            &dir.path().join("b.safetensors"),
            &[
                ("m.lin.bias", vec![3], vec![0.5, 0.5, 0.5]),
                ("m.extra", vec![1], vec![9.]),
            ],
        );
        std::fs::write(
            dir.path().join(INDEX_FILE),
            r#"{"metadata": {}, "weight_map": {"m.lin.weight": "a.safetensors", "m.lin.bias": "b.safetensors", "m.extra": "b.safetensors"}}"#,
        )
        .unwrap();
        let w = Weights::open(dir.path(), &Device::flex(), None).unwrap();
        let lin = w.pp("m").linear("lin", 2, 3, true).unwrap();
        // burn's Linear computes x W + b with W [in, out]: the HF [out, in] weight transposed.
        let x = Tensor::<2>::from_data(TensorData::new(vec![1f32, 1.], [1, 2]), &Device::flex());
        let y = lin.forward(x).into_data();
        assert_eq!(y.as_slice::<f32>().unwrap(), &[3.5, 7.5, 11.5]);
        assert_eq!(w.unused_keys(), vec!["m.extra".to_string()]);
        let e = w.finish(|_| false).unwrap_err().to_string();
        assert!(e.contains("unused tensors: m.extra"), "{e}");
        assert!(w.finish(|k| k == "m.extra").is_ok());
    }

    #[test]
    fn wrong_shape_missing_key_and_missing_shard_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join(SINGLE_FILE),
            &[("t", vec![2, 2], vec![0.; 4])],
        );
        let w = Weights::open(dir.path(), &Device::flex(), None).unwrap();
        let e = w.tensor::<2>("t", [2, 3]).unwrap_err().to_string();
        assert!(
            e.contains("tensor t") && e.contains("[2, 2]") && e.contains("[2, 3]"),
            "{e}"
        );
        let e = w
            .pp("layers.0")
            .tensor::<1>("bias", [2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing tensors: layers.0.bias"), "{e}");

        let sharded = tempfile::tempdir().unwrap();
        std::fs::write(
            sharded.path().join(INDEX_FILE),
            r#"{"weight_map": {"t": "model-00002-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let e = Weights::open(sharded.path(), &Device::flex(), None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("model-00002-of-00002.safetensors") && e.contains("missing"),
            "{e}"
        );

        let empty = tempfile::tempdir().unwrap();
        let e = Weights::open(empty.path(), &Device::flex(), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(SINGLE_FILE), "{e}");
    }

    #[test]
    fn dtype_is_kept_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join(SINGLE_FILE),
            &[("t", vec![2], vec![1.5, -2.0])],
        );
        let w = Weights::open(dir.path(), &Device::flex(), None).unwrap();
        assert_eq!(w.tensor::<1>("t", [2]).unwrap().dtype(), DType::F32);
        let bf = w
            .with_dtype(Some(DType::BF16))
            .tensor::<1>("t", [2])
            .unwrap();
        assert_eq!(bf.dtype(), DType::BF16);
        let back = bf.cast(DType::F32).into_data();
        assert_eq!(back.as_slice::<f32>().unwrap(), &[1.5, -2.0]);
    }

    #[test]
    fn truncated_file_is_a_safetensors_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(SINGLE_FILE);
        write(&p, &[("t", vec![64], vec![0.; 64])]);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
        let e = Weights::open(dir.path(), &Device::flex(), None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("model.safetensors") && e.contains("safetensors"),
            "{e}"
        );
    }
}
