//! Checks that a record's media path exists and stays inside the dataset's `media_dir`.
//!
//! VILA builds media paths with `os.path.join(media_dir, path)`
//! (`llava/data/dataset_impl/llava.py::LLaVADataset.process`): an absolute `path`
//! replaces `media_dir` entirely and `..` is passed through to the OS. A dataset file is
//! data, possibly from elsewhere, so we refuse anything that lands outside `media_dir`:
//! first lexically (`..` components, absolute paths), then after resolving symlinks with
//! `canonicalize`, which also proves the file exists.

use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

/// Which kind of media a path names; images must be files, videos may be a file or a
/// directory of frames (`llava/utils/media.py::_load_video` accepts both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaKind {
    Image,
    Video,
}

impl MediaKind {
    fn label(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
        }
    }
}

/// A dataset's `media_dir`, resolved once.
#[derive(Debug)]
pub(crate) struct MediaRoot {
    /// As written in the registry, for messages.
    given: PathBuf,
    /// Absolute and lexically normalised, symlinks not resolved.
    lexical: PathBuf,
    /// Fully resolved.
    canonical: PathBuf,
}

impl MediaRoot {
    /// Resolves `dir`; fails with a message if it does not exist or is not a directory.
    pub(crate) fn open(dir: &Path) -> Result<MediaRoot, String> {
        let absolute =
            std::path::absolute(dir).map_err(|e| format!("media_dir {}: {e}", dir.display()))?;
        let canonical = fs::canonicalize(dir).map_err(|e| match e.kind() {
            ErrorKind::NotFound => format!("media_dir {} does not exist", dir.display()),
            _ => format!("media_dir {}: {e}", dir.display()),
        })?;
        if !canonical.is_dir() {
            return Err(format!("media_dir {} is not a directory", dir.display()));
        }
        Ok(MediaRoot {
            given: dir.to_path_buf(),
            lexical: normalize(&absolute),
            canonical,
        })
    }

    /// Checks one media path from a record; the error is the message for the user.
    pub(crate) fn check(&self, kind: MediaKind, rel: &str) -> Result<(), String> {
        let label = kind.label();
        if rel.is_empty() {
            return Err(format!("{label} path is empty"));
        }
        let joined = self.lexical.join(rel);
        if !normalize(&joined).starts_with(&self.lexical) {
            return Err(format!(
                "{label} {rel:?} escapes media_dir {}",
                self.given.display()
            ));
        }
        let resolved = match fs::canonicalize(&joined) {
            Ok(p) => p,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Err(format!(
                    "{label} {rel:?} not found: {} does not exist",
                    joined.display()
                ));
            }
            Err(e) => {
                return Err(format!(
                    "{label} {rel:?}: cannot access {}: {e}",
                    joined.display()
                ));
            }
        };
        if !resolved.starts_with(&self.canonical) {
            return Err(format!(
                "{label} {rel:?} resolves to {}, outside media_dir {}",
                resolved.display(),
                self.given.display()
            ));
        }
        if kind == MediaKind::Image && !resolved.is_file() {
            return Err(format!(
                "{label} {rel:?} is not a file: {}",
                joined.display()
            ));
        }
        Ok(())
    }
}

/// Removes `.` and resolves `..` without touching the filesystem; `..` at the root stays
/// at the root, as the OS does.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::Normal(_) => out.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
        }
    }
    out
}
