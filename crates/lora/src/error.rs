//! The crate's one error type. Messages name the file (or the in-memory source) and the problem.

use std::path::PathBuf;

/// Everything that can go wrong building, selecting, loading or saving LoRA adapters.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `adapter_config.json` is not JSON of the expected shape.
    #[error("{path}: malformed JSON: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde said.
        message: String,
    },
    /// A safetensors file could not be parsed (truncated, bad header, ...).
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A hyperparameter is out of range (r = 0, dropout outside [0, 1), ...).
    #[error("invalid LoRA configuration: {0}")]
    InvalidConfig(String),
    /// The adapter uses a PEFT feature this crate does not implement (DoRA, fan_in_fan_out, ...).
    #[error("{path}: unsupported adapter configuration: {message}")]
    Unsupported {
        /// The config file (or in-memory source).
        path: PathBuf,
        /// Which feature, and what to do instead.
        message: String,
    },
    /// `target_modules` / `exclude_modules` / patterns are invalid or select nothing usable.
    #[error("target selection: {0}")]
    Target(String),
    /// One tensor has the wrong shape, rank or dtype.
    #[error("{path}: tensor {key}: {message}")]
    BadTensor {
        /// The file (or in-memory source).
        path: PathBuf,
        /// The tensor's key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Tensors the model needs are absent.
    #[error("{path}: missing tensors: {}", keys.join(", "))]
    MissingKeys {
        /// The file (or in-memory source).
        path: PathBuf,
        /// The missing keys, sorted.
        keys: Vec<String>,
    },
    /// Tensors for modules (or parameters) the model does not have.
    #[error("{path}: tensors for modules the model does not have: {}", keys.join(", "))]
    UnknownModules {
        /// The file (or in-memory source).
        path: PathBuf,
        /// The keys, sorted.
        keys: Vec<String>,
    },
    /// Keys that are not LoRA factors (`base_model.model.<path>.lora_{A,B}.weight`).
    #[error("{path}: keys that are not LoRA factors (base_model.model.<module>.lora_A.weight / .lora_B.weight): {}", keys.join(", "))]
    UnexpectedKeys {
        /// The file.
        path: PathBuf,
        /// The keys, sorted.
        keys: Vec<String>,
    },
    /// A PyTorch `.bin` (zip + pickle) file was refused or could not be parsed.
    #[error("{path}: {message}")]
    Pickle {
        /// The file.
        path: PathBuf,
        /// What was found, and what to do instead.
        message: String,
    },
    /// Reading a tensor back from the device failed.
    #[error("reading tensor {key} back from the device: {message}")]
    Readback {
        /// The parameter path or key.
        key: String,
        /// The backend's error.
        message: String,
    },
}

impl LoraError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LoraError {
        let path = path.into();
        move |source| LoraError::Io { path, source }
    }
}
