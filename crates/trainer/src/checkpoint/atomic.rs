//! Durable, all-or-nothing file writes, and the seam through which every checkpoint byte flows.
//!
//! A file is written to a temporary name beside its target, flushed and `fsync`ed, then renamed
//! over the target, and the parent folder is `fsync`ed so the rename itself survives a crash
//! (ARCHITECTURE.md: "every output file is written to a temporary name and renamed"). An
//! interrupted write leaves the previous file untouched.
//!
//! All bytes go through a [`FileSink`]. The real one is the file system ([`FsSink`]); tests swap
//! in one that fails part-way (for example with [`std::io::ErrorKind::StorageFull`] after N
//! bytes), which is how "disk full while saving" is tested without filling a disk.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::CheckpointError;

/// A file opened for writing by a [`FileSink`]: plain [`Write`] plus a durable flush.
pub trait SinkFile: Write {
    /// Flushes the data to stable storage (`fsync`), like [`File::sync_all`].
    fn sync_all(&mut self) -> io::Result<()>;
}

impl SinkFile for File {
    fn sync_all(&mut self) -> io::Result<()> {
        File::sync_all(self)
    }
}

/// Where checkpoint files are created. Renames, folder creation and deletion always go to the
/// real file system; only the creation and filling of files goes through this seam.
pub trait FileSink: Send + Sync {
    /// Creates (or truncates) the file at `path` for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn SinkFile>>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsSink;

impl FileSink for FsSink {
    fn create(&self, path: &Path) -> io::Result<Box<dyn SinkFile>> {
        Ok(Box::new(File::create(path)?))
    }
}

/// `fsync`s a folder so that renames and creations inside it are durable. Some file systems
/// refuse to open or sync folders; that is not an error worth failing a save for.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir)
        && let Err(error) = handle.sync_all()
    {
        tracing::debug!(dir = %dir.display(), %error, "cannot fsync folder");
    }
}

/// The temporary name a file is written under before it is renamed to `path`.
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `path` atomically through `sink`: `fill` writes the content into the temporary file.
///
/// On any error the temporary file is removed and the previous content of `path` (if any) is
/// left as it was; the error names the file that failed.
pub fn write_atomic_with(
    sink: &dyn FileSink,
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), CheckpointError> {
    let tmp = temporary_path(path);
    let written = (|| {
        let mut file = sink.create(&tmp)?;
        fill(&mut file)?;
        file.flush()?;
        file.sync_all()
    })();
    if let Err(source) = written {
        remove_quietly(&tmp);
        return Err(CheckpointError::WriteFile {
            path: path.to_path_buf(),
            source,
        });
    }
    if let Err(source) = std::fs::rename(&tmp, path) {
        remove_quietly(&tmp);
        return Err(CheckpointError::Rename {
            from: tmp,
            to: path.to_path_buf(),
            source,
        });
    }
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically on the real file system (see [`write_atomic_with`]).
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    write_atomic_with(&FsSink, path, |w| w.write_all(bytes))
}

/// Removes a file, logging (not failing) when that is impossible: used on error paths, where the
/// first error is the one to report.
fn remove_quietly(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot remove temporary file")
        }
    }
}

/// A fault-injecting [`FileSink`]: real files, but once `budget` bytes have been written through
/// it (over all its files together) every further write fails with `kind`, as a full disk
/// ([`io::ErrorKind::StorageFull`]) does. For tests of the error paths; cheap to clone.
#[derive(Debug, Clone)]
pub struct FailAfter {
    budget: Arc<AtomicU64>,
    kind: io::ErrorKind,
}

impl FailAfter {
    /// Fails writes with `kind` after `budget` bytes.
    pub fn new(budget: u64, kind: io::ErrorKind) -> Self {
        Self {
            budget: Arc::new(AtomicU64::new(budget)),
            kind,
        }
    }

    /// Bytes that can still be written before writes fail.
    pub fn remaining(&self) -> u64 {
        self.budget.load(Ordering::SeqCst)
    }
}

/// A crash-injecting [`FileSink`]: real files, but once `budget` bytes have been written
/// through it the process aborts (no unwinding, no cleanup: what SIGKILL or a power cut leaves
/// behind). For the resume tests, through the trainer binary's hidden
/// `--crash-after-checkpoint-bytes`.
#[derive(Debug, Clone)]
pub struct AbortAfter {
    budget: Arc<AtomicU64>,
}

impl AbortAfter {
    /// Aborts the process after `budget` bytes.
    pub fn new(budget: u64) -> Self {
        Self {
            budget: Arc::new(AtomicU64::new(budget)),
        }
    }
}

struct AbortAfterFile {
    file: File,
    sink: AbortAfter,
}

impl Write for AbortAfterFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.sink.budget.load(Ordering::SeqCst);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let written = self.file.write(&buf[..n])?;
        self.sink.budget.fetch_sub(written as u64, Ordering::SeqCst);
        if written < buf.len() || self.sink.budget.load(Ordering::SeqCst) == 0 {
            // Push what was written to the file system first, as a killed process's page cache
            // would be, then die without cleanup.
            let _ = self.file.flush();
            std::process::abort();
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl SinkFile for AbortAfterFile {
    fn sync_all(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

impl FileSink for AbortAfter {
    fn create(&self, path: &Path) -> io::Result<Box<dyn SinkFile>> {
        Ok(Box::new(AbortAfterFile {
            file: File::create(path)?,
            sink: self.clone(),
        }))
    }
}

struct FailAfterFile {
    file: File,
    sink: FailAfter,
}

impl Write for FailAfterFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.sink.budget.load(Ordering::SeqCst);
        if left == 0 && !buf.is_empty() {
            return Err(io::Error::new(self.sink.kind, "injected write failure"));
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let written = self.file.write(&buf[..n])?;
        self.sink.budget.fetch_sub(written as u64, Ordering::SeqCst);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl SinkFile for FailAfterFile {
    fn sync_all(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

impl FileSink for FailAfter {
    fn create(&self, path: &Path) -> io::Result<Box<dyn SinkFile>> {
        Ok(Box::new(FailAfterFile {
            file: File::create(path)?,
            sink: self.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_keeps_previous_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latest");
        write_file_atomic(&path, b"checkpoint-1\n").unwrap();

        let sink = FailAfter::new(4, io::ErrorKind::StorageFull);
        let err = write_atomic_with(&sink, &path, |w| w.write_all(b"checkpoint-2\n")).unwrap_err();
        match &err {
            CheckpointError::WriteFile { path: p, source } => {
                assert_eq!(p, &path);
                assert_eq!(source.kind(), io::ErrorKind::StorageFull);
            }
            other => panic!("unexpected error {other}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"checkpoint-1\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("latest")]);
    }

    #[test]
    fn writes_replace_previous_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_file_atomic(&path, b"1").unwrap();
        write_file_atomic(&path, b"22").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"22");
    }
}
