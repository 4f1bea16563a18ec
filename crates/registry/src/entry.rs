//! One dataset entry of a VILA registry YAML, e.g.
//!
//! ```yaml
//! SampleQA:
//!     _target_: llava.data.LLaVADataset
//!     data_path: /dataset/vila-dataset/sample-qa/dataset.json
//!     media_dir: /dataset/vila-dataset/sample-qa
//! ```
//!
//! The shape comes from VILA's `finetuning/README.md` and
//! `llava/data/registry/datasets/default.yaml`; the keyword arguments it may carry come
//! from `llava/data/dataset_impl/llava.py::LLaVADataset.__init__` (`data_path`,
//! `media_dir`, `is_video`) and `llava/data/base.py::BaseDataset.__init__`
//! (`no_system_prompt`, `system_prompt`, `resample_on_failure`). Hydra passes every key
//! except `_target_` to the constructor, so any key we do not model is kept verbatim in
//! [`DatasetEntry::extra`] and written back unchanged.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::error::RegistryError;

pub(crate) const TARGET_KEY: &str = "_target_";
pub(crate) const DATA_PATH_KEY: &str = "data_path";
pub(crate) const MEDIA_DIR_KEY: &str = "media_dir";

/// The hydra target of VILA's plain LLaVA JSON dataset.
pub const LLAVA_TARGET: &str = "llava.data.LLaVADataset";

/// Classes whose constructor takes a required `data_path` argument (VILA's
/// `llava/data/dataset_impl/{llava,eagle_wds,eagle_video_wds,lita}.py`). An entry with
/// one of these targets but no `data_path` would fail inside hydra, so loading rejects it.
/// Other targets without `data_path` (such as `llava.data.DummyDataset` in VILA's own
/// `default.yaml`) are legitimate and are kept as opaque entries.
const TARGETS_NEEDING_DATA_PATH: &[&str] = &[
    "LLaVADataset",
    "LLaVANextDataset",
    "LLaVANextVideoDataset",
    "EagleWDSDataset",
    "EagleVideoWDSDataset",
    "DVCDataset",
    "ELDataset",
    "RTLDataset",
    "VideoQADataset",
];

/// A registry entry that points at a dataset file.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetEntry {
    /// The hydra `_target_`, e.g. `llava.data.LLaVADataset`.
    pub target: String,
    /// The dataset JSON/JSONL file (absolute in VILA's examples; relative paths are
    /// resolved by VILA against its working directory).
    pub data_path: PathBuf,
    /// Root that media paths in the records are joined to (`os.path.join(media_dir, p)`).
    pub media_dir: Option<PathBuf>,
    /// Every other key of the entry (`is_video`, `no_system_prompt`, `system_prompt`,
    /// `resample_on_failure`, anything else), in file order.
    pub extra: Mapping,
}

impl DatasetEntry {
    /// A plain `llava.data.LLaVADataset` entry, the kind `finetuning/README.md` describes.
    pub fn llava(data_path: PathBuf, media_dir: PathBuf) -> Self {
        Self {
            target: LLAVA_TARGET.to_string(),
            data_path,
            media_dir: Some(media_dir),
            extra: Mapping::new(),
        }
    }

    /// Whether the target is VILA's `LLaVADataset`, under any of the module paths it is
    /// importable from (`llava.data`, `llava.data.dataset_impl`, `...dataset_impl.llava`).
    pub fn is_llava_dataset(&self) -> bool {
        self.target.starts_with("llava.data.") && class_name(&self.target) == "LLaVADataset"
    }

    /// `is_video: true` in the entry (VILA also infers video from the records).
    pub fn is_video(&self) -> bool {
        self.flag("is_video")
    }

    /// `no_system_prompt: true`: VILA prepends an empty system turn
    /// (`llava/data/base.py`, `llava/remote_code/tokenizer_utils.py`).
    pub fn no_system_prompt(&self) -> bool {
        self.flag("no_system_prompt")
    }

    /// Whether the entry sets a `system_prompt` (a string or a list picked at random).
    pub fn has_system_prompt(&self) -> bool {
        matches!(self.extra.get("system_prompt"), Some(v) if !v.is_null())
    }

    fn flag(&self, key: &str) -> bool {
        self.extra
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Serialises the entry. When `layout` (the mapping the entry was loaded from) is
    /// given, keys keep their original order and new keys go last; otherwise the order is
    /// `_target_`, `data_path`, `media_dir`, then `extra`.
    pub(crate) fn to_mapping(
        &self,
        file: &Path,
        name: &str,
        layout: Option<&Mapping>,
    ) -> Result<Mapping, RegistryError> {
        let path_value = |p: &Path| -> Result<Value, RegistryError> {
            p.to_str()
                .map(|s| Value::String(s.to_string()))
                .ok_or_else(|| RegistryError::NonUtf8Path {
                    path: file.to_path_buf(),
                    name: name.to_string(),
                    bad: p.to_path_buf(),
                })
        };
        let target = Value::String(self.target.clone());
        let data_path = path_value(&self.data_path)?;
        let media_dir = match &self.media_dir {
            Some(dir) => Some(path_value(dir)?),
            None => None,
        };

        let mut out = Mapping::new();
        if let Some(layout) = layout {
            for key in layout.keys() {
                match key.as_str() {
                    Some(TARGET_KEY) => {
                        out.insert(key.clone(), target.clone());
                    }
                    Some(DATA_PATH_KEY) => {
                        out.insert(key.clone(), data_path.clone());
                    }
                    // A `media_dir: null` that is still None stays as it was written.
                    Some(MEDIA_DIR_KEY) => {
                        out.insert(key.clone(), media_dir.clone().unwrap_or(Value::Null));
                    }
                    _ => {
                        if let Some(v) = self.extra.get(key) {
                            out.insert(key.clone(), v.clone());
                        }
                    }
                }
            }
        }
        // Anything the layout did not place (or everything, without a layout).
        let mut put = |k: &str, v: Value| {
            let key = Value::String(k.to_string());
            if !out.contains_key(&key) {
                out.insert(key, v);
            }
        };
        put(TARGET_KEY, target);
        put(DATA_PATH_KEY, data_path);
        if let Some(dir) = media_dir {
            put(MEDIA_DIR_KEY, dir);
        }
        for (k, v) in &self.extra {
            if !out.contains_key(k) {
                out.insert(k.clone(), v.clone());
            }
        }
        Ok(out)
    }
}

/// What one registry value turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ParsedEntry {
    /// An entry with a `data_path`.
    Dataset(DatasetEntry),
    /// An entry without `data_path` whose target legitimately has none (e.g.
    /// `llava.data.DummyDataset`). Kept verbatim.
    Opaque { target: String },
}

/// Interprets the value stored under `name` in registry file `file`.
pub(crate) fn parse_entry(
    file: &Path,
    name: &str,
    value: &Value,
) -> Result<ParsedEntry, RegistryError> {
    let invalid = |problem: String| RegistryError::InvalidEntry {
        path: file.to_path_buf(),
        name: name.to_string(),
        problem,
    };
    let map = value.as_mapping().ok_or_else(|| {
        invalid(format!(
            "expected a mapping of arguments, found {}",
            kind_of(value)
        ))
    })?;

    let target = match map.get(TARGET_KEY) {
        None | Some(Value::Null) => {
            return Err(RegistryError::MissingTarget {
                path: file.to_path_buf(),
                name: name.to_string(),
            });
        }
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(other) => {
            return Err(invalid(format!(
                "`_target_` must be a class path string, found {}",
                kind_of(other)
            )));
        }
    };

    let data_path = match map.get(DATA_PATH_KEY) {
        None | Some(Value::Null) => {
            if TARGETS_NEEDING_DATA_PATH.contains(&class_name(&target)) {
                return Err(RegistryError::MissingDataPath {
                    path: file.to_path_buf(),
                    name: name.to_string(),
                    target,
                });
            }
            return Ok(ParsedEntry::Opaque { target });
        }
        Some(Value::String(s)) if !s.is_empty() => PathBuf::from(s),
        Some(other) => {
            return Err(invalid(format!(
                "`data_path` must be a non-empty string, found {}",
                kind_of(other)
            )));
        }
    };

    let media_dir = match map.get(MEDIA_DIR_KEY) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(PathBuf::from(s)),
        Some(other) => {
            return Err(invalid(format!(
                "`media_dir` must be a non-empty string, found {}",
                kind_of(other)
            )));
        }
    };

    let mut extra = Mapping::new();
    for (k, v) in map {
        if !matches!(k.as_str(), Some(TARGET_KEY | DATA_PATH_KEY | MEDIA_DIR_KEY)) {
            extra.insert(k.clone(), v.clone());
        }
    }
    Ok(ParsedEntry::Dataset(DatasetEntry {
        target,
        data_path,
        media_dir,
        extra,
    }))
}

/// The class name at the end of a dotted hydra target.
fn class_name(target: &str) -> &str {
    target.rsplit('.').next().unwrap_or(target)
}

/// A short description of a YAML value's type, for messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
