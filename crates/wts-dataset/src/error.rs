//! The crate's error type. Every variant names the file (or argument) it is about, so a user
//! with thousands of scenarios can find the one that is broken.
//!
//! Shared by all modules: add a variant only when none below fits, and keep messages of the
//! form "<path>: <what is wrong>".

use std::path::PathBuf;

/// Anything that can go wrong while reading a raw tree or writing a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file does not parse (malformed or truncated).
    #[error("{}: malformed JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A CSV file does not parse.
    #[error("{}: malformed CSV: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    /// A file parses but its content is wrong (unknown phase label, empty caption, time past
    /// the video's end, box outside the frame, ...).
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// A video that cannot be probed or decoded (truncated, not H.264, ...).
    #[error("{}: video: {message}", path.display())]
    Video { path: PathBuf, message: String },
    /// An image that cannot be decoded or encoded.
    #[error("{}: image: {message}", path.display())]
    Image { path: PathBuf, message: String },
    /// A required external program is missing.
    #[error(
        "`{program}` was not found on PATH; install it (Debian/Ubuntu: `apt-get install ffmpeg`) \
         or pass pre-extracted frame folders instead of videos"
    )]
    ProgramMissing { program: String },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl DatasetError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DatasetError::Io {
            path: path.into(),
            source,
        }
    }

    /// A content problem in `path`.
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DatasetError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
