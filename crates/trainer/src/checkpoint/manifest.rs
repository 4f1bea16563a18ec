//! The checkpoint manifest: the list of files with their sizes and CRC-32 checksums, written
//! last inside the staging folder. A checkpoint without a manifest, or whose files disagree
//! with it, is incomplete (a crash mid-save, a truncated copy, a flipped bit) and is never
//! resumed from.
//!
//! HF/VILA have no such check (they trust any `checkpoint-N` folder); it is ours, added because
//! a resume from a half-written checkpoint silently corrupts a run.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// File name of the manifest inside a checkpoint folder.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Identifies the manifest layout; bumped when it changes.
pub const MANIFEST_FORMAT: &str = "trainer-checkpoint-manifest/1";

/// One file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// File name inside the checkpoint folder (no folders).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32 (IEEE, as `crc32fast` and zlib compute it) of the content.
    pub crc32: u32,
}

/// The manifest of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The optimizer step the checkpoint holds (`N` of `checkpoint-N`).
    pub step: u64,
    /// The files, in the order they were written.
    pub files: Vec<ManifestEntry>,
}

/// Why a checkpoint folder is not a complete checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// There is no manifest: the save was interrupted before its last write.
    MissingManifest,
    /// The manifest exists but does not parse.
    BadManifest(String),
    /// The manifest names a different step than the folder.
    StepMismatch { folder: u64, manifest: u64 },
    /// A listed file is missing.
    MissingFile(String),
    /// A listed file has a different size (typically truncated).
    SizeMismatch {
        name: String,
        expected: u64,
        actual: u64,
    },
    /// A listed file has the right size but different content.
    ChecksumMismatch {
        name: String,
        expected: u32,
        actual: u32,
    },
    /// A listed file or the folder could not be read.
    Unreadable { name: String, message: String },
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::MissingManifest => write!(f, "no {MANIFEST_NAME} (the save did not finish)"),
            Defect::BadManifest(message) => write!(f, "{MANIFEST_NAME} is malformed: {message}"),
            Defect::StepMismatch { folder, manifest } => {
                write!(
                    f,
                    "{MANIFEST_NAME} is for step {manifest}, the folder for step {folder}"
                )
            }
            Defect::MissingFile(name) => write!(f, "{name} is missing"),
            Defect::SizeMismatch {
                name,
                expected,
                actual,
            } => write!(
                f,
                "{name} has {actual} bytes, the manifest says {expected} (truncated?)"
            ),
            Defect::ChecksumMismatch {
                name,
                expected,
                actual,
            } => write!(
                f,
                "{name} has CRC-32 {actual:08x}, the manifest says {expected:08x} (corrupted)"
            ),
            Defect::Unreadable { name, message } => write!(f, "cannot read {name}: {message}"),
        }
    }
}

/// A [`Write`] adaptor that counts bytes and computes the CRC-32 of what passes through it.
pub(crate) struct ChecksumWriter<W> {
    inner: W,
    hasher: crc32fast::Hasher,
    size: u64,
}

impl<W: Write> ChecksumWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: crc32fast::Hasher::new(),
            size: 0,
        }
    }

    /// The writer back, with the size and checksum of everything written.
    pub(crate) fn finish(self) -> (W, u64, u32) {
        (self.inner, self.size, self.hasher.finalize())
    }
}

impl<W: Write> Write for ChecksumWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Size and CRC-32 of a file, streamed (checkpoint files can be large).
fn checksum_file(path: &Path) -> io::Result<(u64, u32)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hasher.finalize()))
}

impl Manifest {
    /// Reads `dir/manifest.json` and checks every listed file's size and checksum.
    ///
    /// `step` is the step the folder name claims. Sizes are compared before checksums so a
    /// truncated file is reported as such without reading it whole.
    pub fn verify(dir: &Path, step: u64) -> Result<Manifest, Defect> {
        let path = dir.join(MANIFEST_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(Defect::MissingManifest);
            }
            Err(error) => {
                return Err(Defect::Unreadable {
                    name: MANIFEST_NAME.into(),
                    message: error.to_string(),
                });
            }
        };
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| Defect::BadManifest(e.to_string()))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(Defect::BadManifest(format!(
                "unknown format {:?} (expected {MANIFEST_FORMAT:?})",
                manifest.format
            )));
        }
        if manifest.step != step {
            return Err(Defect::StepMismatch {
                folder: step,
                manifest: manifest.step,
            });
        }
        for entry in &manifest.files {
            let file = dir.join(&entry.name);
            let actual_size = match std::fs::metadata(&file) {
                Ok(meta) => meta.len(),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    return Err(Defect::MissingFile(entry.name.clone()));
                }
                Err(error) => {
                    return Err(Defect::Unreadable {
                        name: entry.name.clone(),
                        message: error.to_string(),
                    });
                }
            };
            if actual_size != entry.size {
                return Err(Defect::SizeMismatch {
                    name: entry.name.clone(),
                    expected: entry.size,
                    actual: actual_size,
                });
            }
            let (_, crc) = checksum_file(&file).map_err(|e| Defect::Unreadable {
                name: entry.name.clone(),
                message: e.to_string(),
            })?;
            if crc != entry.crc32 {
                return Err(Defect::ChecksumMismatch {
                    name: entry.name.clone(),
                    expected: entry.crc32,
                    actual: crc,
                });
            }
        }
        Ok(manifest)
    }

    /// The manifest as pretty JSON (with a trailing newline).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_writer_matches_crc32fast() {
        let mut w = ChecksumWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (bytes, size, crc) = w.finish();
        assert_eq!(bytes, b"hello world");
        assert_eq!(size, 11);
        assert_eq!(crc, crc32fast::hash(b"hello world"));
        // The zlib / IEEE check value.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn defects_are_reported_in_words() {
        let text = Defect::SizeMismatch {
            name: "adapter_model.safetensors".into(),
            expected: 10,
            actual: 4,
        }
        .to_string();
        assert!(text.contains("adapter_model.safetensors") && text.contains("truncated"));
    }
}
