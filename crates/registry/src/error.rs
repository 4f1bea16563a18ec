//! Error type of the crate, and the `Problem` record that dataset validation collects.
//!
//! Every variant names the file it is about, so a user who sees only the message knows
//! what to open. Validation does not stop at the first bad record: it gathers up to a cap
//! of problems and returns them together in [`RegistryError::Validation`], so one run
//! shows everything that must be fixed.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Everything that can go wrong while reading, writing or checking a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file could not be read (missing, permission denied, not UTF-8, ...).
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file could not be written (or the atomic rename failed).
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The YAML text does not parse (syntax error, truncated file, duplicate key, ...).
    #[error("{}: invalid YAML: {source}", path.display())]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },

    /// The YAML parses but its top level is not a `name: entry` mapping.
    #[error("{}: expected a mapping of names to entries at the top level, found {found}", path.display())]
    NotAMapping { path: PathBuf, found: &'static str },

    /// A top-level key is not a string (VILA looks datasets up by string name only).
    #[error("{}: top-level key {key} is not a string", path.display())]
    NonStringName { path: PathBuf, key: String },

    /// An entry lacks `_target_`, which hydra's `instantiate` needs to build it.
    #[error("{}: entry \"{name}\" has no `_target_` (hydra needs it to build the dataset)", path.display())]
    MissingTarget { path: PathBuf, name: String },

    /// A LLaVA-style entry lacks `data_path`, a required constructor argument in VILA.
    #[error("{}: entry \"{name}\" (target {target}) has no `data_path`", path.display())]
    MissingDataPath {
        path: PathBuf,
        name: String,
        target: String,
    },

    /// An entry is present but malformed (wrong value types and the like).
    #[error("{}: entry \"{name}\": {problem}", path.display())]
    InvalidEntry {
        path: PathBuf,
        name: String,
        problem: String,
    },

    /// A path cannot be represented in YAML text.
    #[error("{}: entry \"{name}\": path {} is not valid UTF-8 and cannot be written to YAML", path.display(), bad.display())]
    NonUtf8Path {
        path: PathBuf,
        name: String,
        bad: PathBuf,
    },

    /// A `mixtures.yaml` entry is malformed.
    #[error("{}: mixture \"{name}\": {problem}", path.display())]
    InvalidMixtures {
        path: PathBuf,
        name: String,
        problem: String,
    },

    /// A `DATA_MIXTURE` string cannot be parsed. `source_file` is the mixtures file used
    /// for expansion, if any.
    #[error("mixture {mixture:?}: {problem} (mixtures file: {})", source_file.as_ref().map_or_else(|| "none".to_string(), |p| p.display().to_string()))]
    InvalidMixture {
        mixture: String,
        problem: String,
        source_file: Option<PathBuf>,
    },

    /// A VILA_DATASETS-style name could not be resolved to a YAML file.
    #[error("dataset registry \"{name}\" not found: neither {} nor {} exists", repo_path.display(), user_path.display())]
    RegistryFileNotFound {
        name: String,
        repo_path: PathBuf,
        user_path: PathBuf,
    },

    /// Dataset validation found problems. `problems` holds the first few (up to the
    /// configured cap); `total` counts all of them.
    #[error("{}", format_problems(problems, *total))]
    Validation {
        problems: Vec<Problem>,
        total: usize,
    },
}

/// One thing wrong with a dataset, found by [`crate::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file the problem is in: the dataset JSON, the registry YAML, or a subset file.
    pub file: PathBuf,
    /// 0-based record index (for `.jsonl`, the line index) when the problem is in a record.
    pub record: Option<usize>,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.record {
            Some(i) => write!(f, "{}: record {i}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

fn format_problems(problems: &[Problem], total: usize) -> String {
    let mut out = format!(
        "dataset validation found {total} problem{}:",
        if total == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    if total > problems.len() {
        out.push_str(&format!(
            "\n  ... and {} more (only the first {} are listed)",
            total - problems.len(),
            problems.len()
        ));
    }
    out
}

/// Collects problems during validation: keeps the first `cap`, counts all, so a dataset
/// with a million broken records costs a counter, not a million strings.
#[derive(Debug)]
pub(crate) struct ProblemLog {
    kept: Vec<Problem>,
    total: usize,
    cap: usize,
}

impl ProblemLog {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            kept: Vec::new(),
            total: 0,
            cap,
        }
    }

    pub(crate) fn push(&mut self, file: &std::path::Path, record: Option<usize>, message: String) {
        self.total += 1;
        if self.kept.len() < self.cap {
            self.kept.push(Problem {
                file: file.to_path_buf(),
                record,
                message,
            });
        }
    }

    /// The error to return, or None if nothing was found.
    pub(crate) fn into_error(self) -> Option<RegistryError> {
        (self.total > 0).then_some(RegistryError::Validation {
            problems: self.kept,
            total: self.total,
        })
    }
}
