//! Small, sorted directory helpers for discovery.

use std::path::{Path, PathBuf};

use crate::error::DatasetError;

/// Sorted names of the sub-folders of `dir`; empty if `dir` does not exist.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<String>, DatasetError> {
    entries(dir, true, None)
}

/// Sorted names of the files in `dir` ending in `ext` (e.g. `".mp4"`, case-insensitive); empty
/// if `dir` does not exist. Hidden files (temporary names) are ignored.
pub(crate) fn files_with(dir: &Path, ext: &str) -> Result<Vec<String>, DatasetError> {
    entries(dir, false, Some(ext))
}

fn entries(dir: &Path, want_dirs: bool, ext: Option<&str>) -> Result<Vec<String>, DatasetError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let read = std::fs::read_dir(dir).map_err(|e| DatasetError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| DatasetError::io(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // non-UTF-8 names are not dataset files
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if want_dirs {
            if path.is_dir() {
                out.push(name);
            }
        } else if path.is_file()
            && ext.is_none_or(|e| name.to_ascii_lowercase().ends_with(&e.to_ascii_lowercase()))
        {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// The folder holding `split` under `base`: the public test part nests one level more
/// (`test/public`, `test/public_challenge`; wts.md §1.2), so those are tried first.
pub(crate) fn split_dir(base: &Path, split: &str) -> Option<PathBuf> {
    [
        base.join(split).join("public"),
        base.join(split).join("public_challenge"),
        base.join(split),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

/// `dir/preferred` if it is a file; otherwise the only file in `dir` ending in `suffix`
/// (names differ between releases, e.g. VQA `<scenario>.json` vs `<scenario>_overhead_view.json`).
pub(crate) fn file_or_single(
    dir: &Path,
    preferred: &[String],
    suffix: &str,
) -> Result<Option<PathBuf>, DatasetError> {
    for p in preferred {
        let path = dir.join(p);
        if path.is_file() {
            return Ok(Some(path));
        }
    }
    let files = files_with(dir, suffix)?;
    Ok(match files.as_slice() {
        [one] => Some(dir.join(one)),
        _ => None,
    })
}
