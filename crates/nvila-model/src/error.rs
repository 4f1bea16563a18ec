//! The crate's error type. Messages name the file (or argument) and the problem.
//!
//! Shared by all modules: add a variant only when none below fits.

use std::path::PathBuf;

/// Anything that can go wrong while loading or running the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A required file or folder of the checkpoint is absent.
    #[error("{}: missing ({what})", path.display())]
    Missing { path: PathBuf, what: String },
    /// A JSON file does not parse or lacks a field.
    #[error("{}: {message}", path.display())]
    Json { path: PathBuf, message: String },
    /// A safetensors file is malformed.
    #[error("{}: safetensors: {message}", path.display())]
    Safetensors { path: PathBuf, message: String },
    /// Keys the model needs are not in the checkpoint.
    #[error("{}: missing tensors: {}", path.display(), keys.join(", "))]
    MissingKeys { path: PathBuf, keys: Vec<String> },
    /// Keys in the checkpoint the model does not use.
    #[error("{}: unused tensors: {}", path.display(), keys.join(", "))]
    UnusedKeys { path: PathBuf, keys: Vec<String> },
    /// A tensor has the wrong shape or an unsupported dtype.
    #[error("{}: tensor {key}: {message}", path.display())]
    BadTensor {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// The configuration asks for something this port does not implement (or is inconsistent).
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// The tokenizer could not be loaded or used.
    #[error("{}: tokenizer: {message}", path.display())]
    Tokenizer { path: PathBuf, message: String },
    /// An image that cannot be used (fails to decode, too small, too large).
    #[error("{what}: image: {message}")]
    Image { what: String, message: String },
    /// An input that violates a limit (prompt too long, more `<image>` tags than images, ...).
    #[error("invalid input: {0}")]
    Input(String),
}

/// Reads a text file, telling a missing file (`what` says which) from other I/O errors.
pub(crate) fn read_text(path: &std::path::Path, what: &str) -> Result<String, ModelError> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::Missing {
                path: path.to_path_buf(),
                what: what.to_string(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}
