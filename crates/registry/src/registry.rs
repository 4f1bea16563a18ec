//! The registry: an ordered set of named dataset entries read from and written to VILA's
//! `llava/data/registry/datasets/*.yaml` format.
//!
//! Loading and merging follow `llava/data/builder.py::register_datasets`: each file is a
//! `name: entry` mapping and later files `dict.update` earlier ones, so a name defined
//! again replaces the whole earlier entry (no key-level merge) and keeps the position it
//! first had. Writing keeps every entry we did not change byte-for-byte equivalent
//! (same keys, same order, same values) and is atomic. YAML comments are not preserved:
//! `serde_yaml` does not expose them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::entry::{DatasetEntry, ParsedEntry, kind_of, parse_entry};
use crate::error::RegistryError;

/// An ordered VILA dataset registry.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    slots: Vec<Slot>,
    sources: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
struct Slot {
    name: String,
    /// File the entry was read from; None for entries added in memory.
    source: Option<PathBuf>,
    kind: SlotKind,
}

#[derive(Debug, Clone)]
enum SlotKind {
    /// An entry with a `data_path`. `loaded` is the entry as read plus its raw mapping,
    /// so an unchanged entry is written back exactly as it was read.
    Dataset {
        entry: DatasetEntry,
        loaded: Option<Box<(DatasetEntry, Mapping)>>,
    },
    /// An entry we do not interpret (no `data_path`, e.g. `llava.data.DummyDataset`).
    Opaque { target: String, raw: Value },
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one registry YAML. A missing file is an error; an empty file (or one holding
    /// only comments or `---`) is an empty registry.
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let text = fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Reads several registry files in order, like VILA's comma-separated
    /// `VILA_DATASETS`: a name in a later file replaces the earlier entry of that name in
    /// place (Python `dict.update` in `llava/data/builder.py::register_datasets`).
    pub fn load_many(paths: &[PathBuf]) -> Result<Registry, RegistryError> {
        let mut merged = Registry::new();
        for path in paths {
            let next = Self::load(path)?;
            for slot in next.slots {
                merged.put(slot);
            }
            merged.sources.push(path.clone());
        }
        Ok(merged)
    }

    /// Parses registry YAML text; `origin` is the file name used in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Registry, RegistryError> {
        let mut registry = Registry {
            slots: Vec::new(),
            sources: vec![origin.to_path_buf()],
        };
        // serde_yaml rejects a document with no content; PyYAML's safe_load returns None
        // for it. Treat that as "no datasets".
        if is_blank_yaml(text) {
            return Ok(registry);
        }
        let yaml_err = |source| RegistryError::Yaml {
            path: origin.to_path_buf(),
            source,
        };
        let mut value: Value = serde_yaml::from_str(text).map_err(yaml_err)?;
        // PyYAML's safe_load resolves `<<: *anchor` merge keys; serde_yaml only expands
        // the aliases, so apply the merges to read what VILA reads. (Saving then writes
        // the merged form.)
        value.apply_merge().map_err(yaml_err)?;
        let map = match value {
            Value::Null => return Ok(registry),
            Value::Mapping(map) => map,
            other => {
                return Err(RegistryError::NotAMapping {
                    path: origin.to_path_buf(),
                    found: kind_of(&other),
                });
            }
        };
        for (key, value) in map {
            let name = match key {
                Value::String(s) => s,
                other => {
                    return Err(RegistryError::NonStringName {
                        path: origin.to_path_buf(),
                        key: serde_yaml::to_string(&other)
                            .map(|s| s.trim().to_string())
                            .unwrap_or_else(|_| kind_of(&other).to_string()),
                    });
                }
            };
            let kind = match parse_entry(origin, &name, &value)? {
                ParsedEntry::Dataset(entry) => {
                    let raw = value.as_mapping().cloned().unwrap_or_default();
                    SlotKind::Dataset {
                        entry: entry.clone(),
                        loaded: Some(Box::new((entry, raw))),
                    }
                }
                ParsedEntry::Opaque { target } => SlotKind::Opaque { target, raw: value },
            };
            // Duplicate keys inside one file are rejected by serde_yaml, so `put` only
            // appends here.
            registry.put(Slot {
                name,
                source: Some(origin.to_path_buf()),
                kind,
            });
        }
        Ok(registry)
    }

    /// The dataset entry called `name`, if it exists and has a `data_path`.
    pub fn get(&self, name: &str) -> Option<&DatasetEntry> {
        match &self.slot(name)?.kind {
            SlotKind::Dataset { entry, .. } => Some(entry),
            SlotKind::Opaque { .. } => None,
        }
    }

    /// Whether any entry (with or without `data_path`) is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.slot(name).is_some()
    }

    /// The `_target_` of entry `name`, also for entries without `data_path`.
    pub fn target(&self, name: &str) -> Option<&str> {
        match &self.slot(name)?.kind {
            SlotKind::Dataset { entry, .. } => Some(&entry.target),
            SlotKind::Opaque { target, .. } => Some(target),
        }
    }

    /// The file entry `name` was read from (None for entries added with `upsert`).
    pub fn source_of(&self, name: &str) -> Option<&Path> {
        self.slot(name)?.source.as_deref()
    }

    /// The files this registry was read from, in load order.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    /// All entry names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.name.as_str())
    }

    /// The entries that have a `data_path`, in file order.
    pub fn datasets(&self) -> impl Iterator<Item = (&str, &DatasetEntry)> {
        self.slots.iter().filter_map(|s| match &s.kind {
            SlotKind::Dataset { entry, .. } => Some((s.name.as_str(), entry)),
            SlotKind::Opaque { .. } => None,
        })
    }

    /// Number of entries (with or without `data_path`).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the registry has no entries.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Replaces the entry called `name` in place, or appends it. Other entries and the
    /// order are untouched.
    pub fn upsert(&mut self, name: &str, entry: DatasetEntry) {
        match self.slots.iter_mut().find(|s| s.name == name) {
            Some(slot) => {
                // Keep the loaded layout so an edited entry keeps its key order, and an
                // identical re-upsert is still written exactly as read.
                let loaded = match &mut slot.kind {
                    SlotKind::Dataset { loaded, .. } => loaded.take(),
                    SlotKind::Opaque { .. } => None,
                };
                slot.kind = SlotKind::Dataset { entry, loaded };
            }
            None => self.slots.push(Slot {
                name: name.to_string(),
                source: None,
                kind: SlotKind::Dataset {
                    entry,
                    loaded: None,
                },
            }),
        }
    }

    /// Renders the registry as YAML text; `origin` names the file in error messages.
    pub fn to_yaml(&self, origin: &Path) -> Result<String, RegistryError> {
        let mut root = Mapping::new();
        for slot in &self.slots {
            let value = match &slot.kind {
                SlotKind::Dataset { entry, loaded } => match loaded {
                    Some(l) if l.0 == *entry => Value::Mapping(l.1.clone()),
                    _ => Value::Mapping(entry.to_mapping(
                        origin,
                        &slot.name,
                        loaded.as_ref().map(|l| &l.1),
                    )?),
                },
                SlotKind::Opaque { raw, .. } => raw.clone(),
            };
            root.insert(Value::String(slot.name.clone()), value);
        }
        if root.is_empty() {
            // `{}` would also parse, but an empty file is what VILA users expect.
            return Ok(String::new());
        }
        serde_yaml::to_string(&Value::Mapping(root)).map_err(|source| RegistryError::Yaml {
            path: origin.to_path_buf(),
            source,
        })
    }

    /// Writes the registry atomically: a temporary file in the destination directory is
    /// written, flushed to disk and renamed over `path`, so readers (a training job
    /// starting at the same moment) see either the old or the new file, never half of
    /// one. Parent directories are created. An existing file's permissions are kept; if
    /// `path` is a symlink, the file it points to is replaced, not the link.
    pub fn save(&self, path: &Path) -> Result<(), RegistryError> {
        let text = self.to_yaml(path)?;
        let write_err = |source: std::io::Error| RegistryError::Write {
            path: path.to_path_buf(),
            source,
        };

        let target = match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                fs::canonicalize(path).map_err(write_err)?
            }
            _ => path.to_path_buf(),
        };
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(write_err)?;

        let mut tmp = tempfile::Builder::new()
            .prefix(".registry-")
            .suffix(".yaml.tmp")
            .tempfile_in(&dir)
            .map_err(write_err)?;
        tmp.write_all(text.as_bytes()).map_err(write_err)?;
        tmp.as_file().sync_all().map_err(write_err)?;
        // tempfile creates 0600 files; a registry is shared configuration.
        let perms = match fs::metadata(&target) {
            Ok(meta) => meta.permissions(),
            Err(_) => default_permissions(tmp.as_file()).map_err(write_err)?,
        };
        fs::set_permissions(tmp.path(), perms).map_err(write_err)?;
        tmp.persist(&target).map_err(|e| write_err(e.error))?;
        Ok(())
    }

    fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.name == name)
    }

    /// Inserts or replaces (in place) a slot by name.
    fn put(&mut self, slot: Slot) {
        match self.slots.iter_mut().find(|s| s.name == slot.name) {
            Some(existing) => *existing = slot,
            None => self.slots.push(slot),
        }
    }
}

/// True when the text holds no YAML content: only whitespace, comments and document
/// markers. PyYAML loads such text as None; serde_yaml refuses it.
pub(crate) fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|line| {
        let t = line.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

#[cfg(unix)]
fn default_permissions(_file: &fs::File) -> std::io::Result<fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Ok(fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn default_permissions(file: &fs::File) -> std::io::Result<fs::Permissions> {
    Ok(file.metadata()?.permissions())
}
