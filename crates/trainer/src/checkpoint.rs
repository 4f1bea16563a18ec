//! Checkpoints: `output_dir/checkpoint-N/` folders written all-or-nothing, verified on resume.
//!
//! Conventions and where they come from:
//!
//! - **Layout.** `output_dir/checkpoint-N` with `N` the optimizer step, as HF's
//!   `PREFIX_CHECKPOINT_DIR` (`transformers/trainer_utils.py`). What goes inside is the caller's
//!   choice ([`CheckpointFile`]): adapter files, `trainer_state.json`, optimizer state, RNG and
//!   data-cursor state.
//! - **Staging.** Files are written into `output_dir/tmp-checkpoint-N/` and the folder is renamed
//!   to `checkpoint-N` when complete, as VILA's patched `Trainer._save_checkpoint` does
//!   (`llava/train/train_mem.py`; nvila.md §5.4). A crash mid-save leaves only a `tmp-` folder,
//!   which [`CheckpointManager::discover`] removes with a warning.
//! - **Manifest.** Ours: `manifest.json` (sizes and CRC-32s, see [`Manifest`]) is the last file
//!   written into the staging folder. On resume the newest checkpoint whose files match their
//!   manifest is chosen; newer defective ones are reported ([`Discovery::rejected`]) so the
//!   binary can say which one was skipped and why.
//! - **`latest`.** `output_dir/latest` names the newest complete checkpoint (`checkpoint-N`),
//!   written atomically after the rename; a convenience for people and scripts (DeepSpeed keeps a
//!   file of that name inside its checkpoints). Discovery does not trust it.
//! - **Rotation.** `save_total_limit` as HF's `rotate_checkpoints` (`trainer_utils.py`): oldest
//!   first by step, never the checkpoint just written, and only after it is complete.
//! - **Finished runs.** `output_dir/config.json` means training finished, as VILA's
//!   `get_checkpoint_path` (`llava/train/utils.py`) decides; see [`is_finished`].
//!
//! Any IO error while saving (a full disk included) removes the staging folder and leaves the
//! previous checkpoints and `latest` as they were; the error names the file that failed.

mod atomic;
mod manifest;
mod tensors;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

pub use atomic::{
    AbortAfter, FailAfter, FileSink, FsSink, SinkFile, write_atomic_with, write_file_atomic,
};
pub use manifest::{Defect, MANIFEST_FORMAT, MANIFEST_NAME, Manifest, ManifestEntry};
pub use tensors::{
    DecodedTensors, NamedTensor, TensorFileError, decode_safetensors, encode_safetensors,
    read_safetensors,
};

use manifest::ChecksumWriter;

/// Prefix of checkpoint folders (HF `PREFIX_CHECKPOINT_DIR`).
pub const CHECKPOINT_PREFIX: &str = "checkpoint-";
/// Prefix of staging folders (VILA's patched `_save_checkpoint`).
pub const STAGING_PREFIX: &str = "tmp-checkpoint-";
/// Name of the file at `output_dir` that names the newest complete checkpoint.
pub const LATEST_NAME: &str = "latest";
/// The file whose presence at `output_dir` marks a finished run (VILA `get_checkpoint_path`).
pub const FINISHED_MARKER: &str = "config.json";

/// Everything that can go wrong while saving or finding checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A folder could not be created.
    #[error("{}: cannot create folder: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file could not be written (disk full, permission denied, ...).
    #[error("{}: cannot write: {source}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A rename (the commit of an atomic write) failed.
    #[error("cannot rename {} to {}: {source}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A folder could not be listed.
    #[error("{}: cannot list folder: {source}", path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A stale folder could not be removed.
    #[error("{}: cannot remove: {source}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The caller asked for a file name that cannot be part of a checkpoint.
    #[error("checkpoint file name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// Content could not be encoded (JSON or safetensors).
    #[error("{name}: cannot encode: {message}")]
    Encode { name: String, message: String },
    /// A safetensors file inside a checkpoint is malformed.
    #[error("{}: {source}", path.display())]
    Tensors {
        path: PathBuf,
        #[source]
        source: TensorFileError,
    },
    /// A JSON file inside a checkpoint is malformed.
    #[error("{}: invalid JSON: {message}", path.display())]
    Json { path: PathBuf, message: String },
}

/// A writer closure: fills one checkpoint file.
type FillFn = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// How a checkpoint file's content is produced.
enum FileContent {
    /// Bytes already in memory.
    Bytes(Vec<u8>),
    /// Streamed by a closure (large files need not be held in memory twice).
    Writer(FillFn),
}

/// One file of a checkpoint: a plain name (no folders) and its content.
pub struct CheckpointFile {
    name: String,
    content: FileContent,
}

impl CheckpointFile {
    /// A file with the given bytes.
    pub fn bytes(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            content: FileContent::Bytes(bytes),
        }
    }

    /// A file streamed by `fill`.
    pub fn writer(
        name: impl Into<String>,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            content: FileContent::Writer(Box::new(fill)),
        }
    }

    /// `value` as pretty-printed JSON (two-space indent, trailing newline).
    pub fn json<T: Serialize + ?Sized>(
        name: impl Into<String>,
        value: &T,
    ) -> Result<Self, CheckpointError> {
        let name = name.into();
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| CheckpointError::Encode {
            name: name.clone(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        Ok(Self::bytes(name, bytes))
    }

    /// f32 tensors by name as a safetensors file, with an optional single metadata entry.
    pub fn safetensors(
        name: impl Into<String>,
        tensors: &[NamedTensor],
        metadata: Option<(&str, &str)>,
    ) -> Result<Self, CheckpointError> {
        let name = name.into();
        let bytes = encode_safetensors(tensors, metadata).map_err(|e| CheckpointError::Encode {
            name: name.clone(),
            message: e.to_string(),
        })?;
        Ok(Self::bytes(name, bytes))
    }

    /// The file name inside the checkpoint folder.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for CheckpointFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let content = match &self.content {
            FileContent::Bytes(b) => format!("{} bytes", b.len()),
            FileContent::Writer(_) => "writer".to_string(),
        };
        f.debug_struct("CheckpointFile")
            .field("name", &self.name)
            .field("content", &content)
            .finish()
    }
}

/// A checkpoint that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteCheckpoint {
    /// The optimizer step it holds.
    pub step: u64,
    /// Its folder.
    pub path: PathBuf,
    /// Its verified manifest.
    pub manifest: Manifest,
}

/// A checkpoint folder that was skipped because it is incomplete or corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedCheckpoint {
    /// The step its name claims.
    pub step: u64,
    /// Its folder (left in place: it may be worth a look).
    pub path: PathBuf,
    /// What is wrong with it.
    pub defect: Defect,
}

/// What [`CheckpointManager::discover`] found in `output_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Discovery {
    /// `output_dir/config.json` exists: the run finished and must not be retrained (VILA).
    pub finished: bool,
    /// The newest complete checkpoint, to resume from; `None` starts from scratch.
    pub resume_from: Option<CompleteCheckpoint>,
    /// Newer checkpoint folders that were skipped, newest first.
    pub rejected: Vec<RejectedCheckpoint>,
    /// Leftover staging folders (interrupted saves) that were removed.
    pub removed_staging: Vec<PathBuf>,
    /// The content of `output_dir/latest`, when present (informative only).
    pub latest: Option<String>,
}

/// A checkpoint just written by [`CheckpointManager::save`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCheckpoint {
    /// The checkpoint.
    pub checkpoint: CompleteCheckpoint,
    /// Older (or stale) checkpoint folders removed by rotation.
    pub removed: Vec<PathBuf>,
}

/// Whether the run in `output_dir` has finished: VILA counts training as done when
/// `output_dir/config.json` exists (`llava/train/utils.py::get_checkpoint_path`) and exits 0.
pub fn is_finished(output_dir: &Path) -> bool {
    output_dir.join(FINISHED_MARKER).is_file()
}

/// The step of a folder called `<prefix><digits>`, as HF's `_re_checkpoint` (`^checkpoint\-(\d+)$`).
fn step_of(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checks that `name` is a plain file name that can live in a checkpoint folder.
fn check_name(name: &str) -> Result<(), CheckpointError> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        Some("must be a plain file name without folders")
    } else if name == MANIFEST_NAME {
        Some("is reserved for the manifest")
    } else if name.ends_with(".tmp") {
        Some("ends with .tmp, which is reserved for temporary files")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CheckpointError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Removes a folder tree; a folder that is already gone is fine.
fn remove_dir(path: &Path) -> Result<(), CheckpointError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CheckpointError::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes, finds and rotates the checkpoints of one run.
#[derive(Clone)]
pub struct CheckpointManager {
    output_dir: PathBuf,
    save_total_limit: Option<u64>,
    sink: Arc<dyn FileSink>,
}

impl std::fmt::Debug for CheckpointManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointManager")
            .field("output_dir", &self.output_dir)
            .field("save_total_limit", &self.save_total_limit)
            .finish_non_exhaustive()
    }
}

impl CheckpointManager {
    /// A manager for `output_dir`, keeping at most `save_total_limit` checkpoints (`None` or 0:
    /// keep all, as HF).
    pub fn new(output_dir: impl Into<PathBuf>, save_total_limit: Option<u64>) -> Self {
        Self {
            output_dir: output_dir.into(),
            save_total_limit: save_total_limit.filter(|&n| n > 0),
            sink: Arc::new(FsSink),
        }
    }

    /// Routes file writes through `sink` (fault injection in tests).
    pub fn with_sink(mut self, sink: Arc<dyn FileSink>) -> Self {
        self.sink = sink;
        self
    }

    /// The run's output folder.
    pub fn output_dir(&self) -> &Path {
        &self.output_dir
    }

    /// `output_dir/checkpoint-<step>`.
    pub fn checkpoint_dir(&self, step: u64) -> PathBuf {
        self.output_dir.join(format!("{CHECKPOINT_PREFIX}{step}"))
    }

    fn staging_dir(&self, step: u64) -> PathBuf {
        self.output_dir.join(format!("{STAGING_PREFIX}{step}"))
    }

    /// `(step, path)` of every `checkpoint-N` folder, ascending by step.
    fn list_checkpoints(&self) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
        let mut found = Vec::new();
        for (name, path) in self.list_dirs()? {
            if let Some(step) = step_of(&name, CHECKPOINT_PREFIX) {
                found.push((step, path));
            }
        }
        found.sort();
        Ok(found)
    }

    /// `(name, path)` of every folder in `output_dir` (none when it does not exist).
    fn list_dirs(&self) -> Result<Vec<(String, PathBuf)>, CheckpointError> {
        let entries = match std::fs::read_dir(&self.output_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CheckpointError::ReadDir {
                    path: self.output_dir.clone(),
                    source,
                });
            }
        };
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| CheckpointError::ReadDir {
                path: self.output_dir.clone(),
                source,
            })?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if let Some(name) = entry.file_name().to_str() {
                dirs.push((name.to_string(), path));
            }
        }
        dirs.sort();
        Ok(dirs)
    }

    /// Finds where to resume: removes leftover staging folders (warning for each), then checks
    /// checkpoints from the newest down and returns the first complete one, with every newer
    /// defective one listed (and a warning logged naming it).
    ///
    /// A finished run (`output_dir/config.json`) is reported without touching anything.
    pub fn discover(&self) -> Result<Discovery, CheckpointError> {
        if is_finished(&self.output_dir) {
            return Ok(Discovery {
                finished: true,
                ..Discovery::default()
            });
        }
        let mut discovery = Discovery::default();
        for (name, path) in self.list_dirs()? {
            if name.starts_with(STAGING_PREFIX) {
                tracing::warn!(
                    path = %path.display(),
                    "removing {name}: left over from a checkpoint save that did not finish"
                );
                remove_dir(&path)?;
                discovery.removed_staging.push(path);
            }
        }
        discovery.latest = std::fs::read_to_string(self.output_dir.join(LATEST_NAME))
            .ok()
            .map(|s| s.trim().to_string());
        for (step, path) in self.list_checkpoints()?.into_iter().rev() {
            match Manifest::verify(&path, step) {
                Ok(manifest) => {
                    discovery.resume_from = Some(CompleteCheckpoint {
                        step,
                        path,
                        manifest,
                    });
                    break;
                }
                Err(defect) => {
                    tracing::warn!(
                        path = %path.display(),
                        "skipping checkpoint-{step}: {defect}; falling back to an older checkpoint"
                    );
                    discovery
                        .rejected
                        .push(RejectedCheckpoint { step, path, defect });
                }
            }
        }
        if let (Some(latest), Some(found)) = (&discovery.latest, &discovery.resume_from) {
            let expected = format!("{CHECKPOINT_PREFIX}{}", found.step);
            if *latest != expected {
                tracing::warn!(
                    "{LATEST_NAME} names {latest}, but the newest complete checkpoint is {expected}"
                );
            }
        }
        Ok(discovery)
    }

    /// Writes `files` as `checkpoint-<step>`: into `tmp-checkpoint-<step>/`, manifest last, then
    /// renamed; then `latest`; then rotation.
    ///
    /// On error the staging folder is removed and earlier checkpoints and `latest` are intact.
    /// A `checkpoint-<step>` already present (a defective leftover of an earlier attempt) is
    /// replaced only once the new one is complete.
    pub fn save(
        &self,
        step: u64,
        files: Vec<CheckpointFile>,
    ) -> Result<SavedCheckpoint, CheckpointError> {
        let mut names = std::collections::BTreeSet::new();
        for file in &files {
            check_name(&file.name)?;
            if !names.insert(file.name.as_str()) {
                return Err(CheckpointError::InvalidName {
                    name: file.name.clone(),
                    reason: "appears twice",
                });
            }
        }
        std::fs::create_dir_all(&self.output_dir).map_err(|source| CheckpointError::CreateDir {
            path: self.output_dir.clone(),
            source,
        })?;
        let staging = self.staging_dir(step);
        if staging.exists() {
            tracing::warn!(path = %staging.display(), "removing a stale staging folder before saving");
            remove_dir(&staging)?;
        }
        std::fs::create_dir(&staging).map_err(|source| CheckpointError::CreateDir {
            path: staging.clone(),
            source,
        })?;
        let staged = self.write_staging(&staging, step, files);
        let manifest = match staged {
            Ok(manifest) => manifest,
            Err(error) => {
                if let Err(cleanup) = remove_dir(&staging) {
                    tracing::warn!("after a failed save: {cleanup}");
                }
                return Err(error);
            }
        };
        atomic::sync_dir(&staging);

        let target = self.checkpoint_dir(step);
        let replaced = self
            .output_dir
            .join(format!("{STAGING_PREFIX}{step}.replaced"));
        let had_target = target.exists();
        if had_target {
            tracing::warn!(path = %target.display(), "replacing an existing checkpoint of the same step");
            remove_dir(&replaced)?;
            if let Err(source) = std::fs::rename(&target, &replaced) {
                let _ = remove_dir(&staging);
                return Err(CheckpointError::Rename {
                    from: target,
                    to: replaced,
                    source,
                });
            }
        }
        if let Err(source) = std::fs::rename(&staging, &target) {
            if had_target && let Err(error) = std::fs::rename(&replaced, &target) {
                tracing::warn!(%error, "cannot move the previous checkpoint-{step} back");
            }
            let _ = remove_dir(&staging);
            return Err(CheckpointError::Rename {
                from: staging,
                to: target,
                source,
            });
        }
        atomic::sync_dir(&self.output_dir);
        if had_target && let Err(error) = remove_dir(&replaced) {
            tracing::warn!("{error}");
        }

        let latest_text = format!("{CHECKPOINT_PREFIX}{step}\n");
        atomic::write_atomic_with(
            self.sink.as_ref(),
            &self.output_dir.join(LATEST_NAME),
            |w| w.write_all(latest_text.as_bytes()),
        )?;

        let removed = self.rotate(step);
        Ok(SavedCheckpoint {
            checkpoint: CompleteCheckpoint {
                step,
                path: target,
                manifest,
            },
            removed,
        })
    }

    /// Writes every file and then the manifest into `staging`.
    fn write_staging(
        &self,
        staging: &Path,
        step: u64,
        files: Vec<CheckpointFile>,
    ) -> Result<Manifest, CheckpointError> {
        let mut entries = Vec::with_capacity(files.len());
        for file in files {
            let path = staging.join(&file.name);
            let written = (|| {
                let mut out = ChecksumWriter::new(self.sink.create(&path)?);
                match file.content {
                    FileContent::Bytes(bytes) => out.write_all(&bytes)?,
                    FileContent::Writer(fill) => fill(&mut out)?,
                }
                out.flush()?;
                let (mut inner, size, crc32) = out.finish();
                inner.sync_all()?;
                Ok::<_, io::Error>((size, crc32))
            })();
            let (size, crc32) = written.map_err(|source| CheckpointError::WriteFile {
                path: path.clone(),
                source,
            })?;
            entries.push(ManifestEntry {
                name: file.name,
                size,
                crc32,
            });
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_string(),
            step,
            files: entries,
        };
        let path = staging.join(MANIFEST_NAME);
        let text = manifest.to_json();
        (|| {
            let mut out = self.sink.create(&path)?;
            out.write_all(text.as_bytes())?;
            out.flush()?;
            out.sync_all()
        })()
        .map_err(|source| CheckpointError::WriteFile { path, source })?;
        Ok(manifest)
    }

    /// Applies `save_total_limit` after `checkpoint-<newest>` was written (HF
    /// `rotate_checkpoints`: ascending by step, the newest protected). Folders with a higher
    /// step than `newest` can only be defective leftovers a resume skipped; those that fail
    /// verification are removed too. Failures to remove are logged, not fatal: the new
    /// checkpoint is complete either way.
    fn rotate(&self, newest: u64) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        let checkpoints = match self.list_checkpoints() {
            Ok(list) => list,
            Err(error) => {
                tracing::warn!("cannot rotate checkpoints: {error}");
                return removed;
            }
        };
        let mut kept = Vec::new();
        for (step, path) in checkpoints {
            if step > newest {
                match Manifest::verify(&path, step) {
                    Err(defect) => {
                        tracing::warn!(path = %path.display(), "removing stale checkpoint-{step}: {defect}");
                        match remove_dir(&path) {
                            Ok(()) => removed.push(path),
                            Err(error) => tracing::warn!("{error}"),
                        }
                        continue;
                    }
                    Ok(_) => tracing::warn!(
                        path = %path.display(),
                        "checkpoint-{step} is newer than the checkpoint just written"
                    ),
                }
            }
            kept.push((step, path));
        }
        let Some(limit) = self.save_total_limit else {
            return removed;
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut remaining = kept.len();
        for (step, path) in kept {
            if remaining <= limit {
                break;
            }
            if step == newest {
                continue;
            }
            tracing::info!(path = %path.display(), "removing checkpoint-{step} (save_total_limit {limit})");
            match remove_dir(&path) {
                Ok(()) => {
                    removed.push(path);
                    remaining -= 1;
                }
                Err(error) => tracing::warn!("{error}"),
            }
        }
        removed
    }
}

/// Writes `value` as pretty JSON (two-space indent, trailing newline) to `path`, atomically.
pub fn write_json_atomic<T: Serialize + ?Sized>(
    path: &Path,
    value: &T,
) -> Result<(), CheckpointError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| CheckpointError::Encode {
        name: path.display().to_string(),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    write_file_atomic(path, &bytes)
}

/// Writes f32 tensors by name as a safetensors file to `path`, atomically (for files outside a
/// checkpoint folder, such as the final adapter in `output_dir`).
pub fn write_safetensors_atomic(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: Option<(&str, &str)>,
) -> Result<(), CheckpointError> {
    let bytes = encode_safetensors(tensors, metadata).map_err(|e| CheckpointError::Encode {
        name: path.display().to_string(),
        message: e.to_string(),
    })?;
    write_file_atomic(path, &bytes)
}

/// Reads a JSON file of a checkpoint into `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CheckpointError> {
    let text = std::fs::read_to_string(path).map_err(|source| CheckpointError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| CheckpointError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names_follow_hf() {
        assert_eq!(step_of("checkpoint-12", CHECKPOINT_PREFIX), Some(12));
        assert_eq!(step_of("checkpoint-", CHECKPOINT_PREFIX), None);
        assert_eq!(step_of("checkpoint-1a", CHECKPOINT_PREFIX), None);
        assert_eq!(step_of("tmp-checkpoint-3", CHECKPOINT_PREFIX), None);
        assert_eq!(step_of("tmp-checkpoint-3", STAGING_PREFIX), Some(3));
    }

    #[test]
    fn standalone_files_are_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("a.json");
        write_json_atomic(&json, &serde_json::json!({"r": 16})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&json).unwrap(),
            "{\n  \"r\": 16\n}\n"
        );
        let st = dir.path().join("t.safetensors");
        let t = NamedTensor::new("x", vec![2], vec![1.0, 2.0]).unwrap();
        write_safetensors_atomic(&st, std::slice::from_ref(&t), None).unwrap();
        assert_eq!(read_safetensors(&st).unwrap().tensors, vec![t]);
        let value: serde_json::Value = read_json(&json).unwrap();
        assert_eq!(value["r"], 16);
        assert!(read_json::<serde_json::Value>(&st).is_err());
    }

    #[test]
    fn file_names_are_checked() {
        for bad in ["", "a/b", "..", MANIFEST_NAME, "x.tmp"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        check_name("adapter_model.safetensors").unwrap();
    }
}
