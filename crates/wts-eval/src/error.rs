//! The crate's error type. Every variant names the file (and where useful the
//! scenario, segment and field) so a user can fix the input without reading code.

use std::path::{Path, PathBuf};

/// Errors from loading WordNet, ground truth or submissions.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The WordNet directory does not hold WordNet 3.0 database files.
    #[error(
        "WordNet 3.0 not found in {dir} (no index.noun); install the `wordnet-base` package \
         (apt-get install wordnet-base) or pass the directory holding index.*/data.*/*.exc"
    )]
    WordNetMissing { dir: PathBuf },
    /// A WordNet file could not be read.
    #[error("cannot read WordNet file {path}: {source}")]
    WordNetIo {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A WordNet file is not in the expected format.
    #[error("WordNet file {path} is malformed: {problem}")]
    WordNetFormat { path: PathBuf, problem: String },
    /// A ground-truth folder the official layout requires does not exist.
    #[error("ground-truth folder {path} does not exist ({what})")]
    MissingGroundTruth { path: PathBuf, what: &'static str },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file is not valid JSON (malformed or truncated).
    #[error("{path} is not valid JSON (malformed or truncated): {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A JSON file parsed but does not have the expected structure.
    #[error("{path}: {problem}")]
    Schema { path: PathBuf, problem: String },
    /// A caption is empty or only whitespace.
    #[error("{path}: empty {field} for {scenario}, segment label {label:?}")]
    EmptyCaption {
        path: PathBuf,
        scenario: String,
        label: String,
        field: &'static str,
    },
    /// A phase label that is neither a digit 0-4 nor a phase name.
    #[error(
        "{path}: unknown phase label {label:?} in {scenario} (expected 0-4 or prerecognition/recognition/judgement/action/avoidance)"
    )]
    UnknownPhaseLabel {
        path: PathBuf,
        scenario: String,
        label: String,
    },
    /// The ground truth holds no segment at all, so no mean can be taken (the official
    /// script fails with ZeroDivisionError here).
    #[error("no ground-truth segments found under {dir}")]
    NoGroundTruthSegments { dir: PathBuf },
    /// The VQA ground truth holds no question with an `id` and a `correct` answer.
    #[error("{path}: no questions with both \"id\" and \"correct\" found")]
    NoVqaQuestions { path: PathBuf },
}

impl EvalError {
    pub(crate) fn schema(path: &Path, problem: impl Into<String>) -> EvalError {
        EvalError::Schema {
            path: path.to_owned(),
            problem: problem.into(),
        }
    }

    pub(crate) fn wordnet_format(path: &Path, problem: impl Into<String>) -> EvalError {
        EvalError::WordNetFormat {
            path: path.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Reads and parses a JSON file with errors that name the file.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value, EvalError> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| EvalError::Json {
        path: path.to_owned(),
        source,
    })
}
