//! The data pipeline's error type. Every variant names the file, and the record where there
//! is one, so a message alone says what to open and fix.

use std::fmt;
use std::path::PathBuf;

use nvila_model::ModelError;
use registry::RegistryError;

/// Everything that can go wrong between `DATA_MIXTURE` and a collated micro-batch.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// World size, per-device batch or gradient accumulation is unusable, or the rank is
    /// outside the world.
    #[error("batch geometry: {0}")]
    Geometry(String),

    /// A `DATA_MIXTURE` element names no registry entry.
    #[error(
        "DATA_MIXTURE {mixture:?}: dataset \"{name}\" is not in the registry ({}); known datasets: {}",
        join_paths(registries),
        if known.is_empty() { "(none)".to_string() } else { known.join(", ") }
    )]
    UnknownDataset {
        mixture: String,
        name: String,
        registries: Vec<PathBuf>,
        known: Vec<String>,
    },

    /// A registry entry this trainer cannot load (not a `LLaVADataset`, no `data_path`,
    /// video data).
    #[error("{}: dataset \"{name}\": {message}", registry.display())]
    Entry {
        registry: PathBuf,
        name: String,
        message: String,
    },

    /// Reading the registry, parsing the mixture, or validating the datasets failed (missing
    /// data file or media, malformed records: the registry crate's checks).
    #[error(transparent)]
    Registry(#[from] RegistryError),

    /// A dataset file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A dataset or subset file is not what VILA expects (bad JSON, not a list, ...).
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },

    /// One record of a dataset file is malformed.
    #[error("{}: record {record}{}: {message}", file.display(), IdSuffix(id.as_deref()))]
    Record {
        file: PathBuf,
        record: usize,
        id: Option<String>,
        message: String,
    },

    /// A `name@subset` item whose slice file is missing or malformed.
    #[error("{}: subset \"{subset}\" of dataset \"{name}\": {message}", path.display())]
    Subset {
        path: PathBuf,
        name: String,
        subset: String,
        message: String,
    },

    /// The checkpoint's configs or tokenizer could not be used to prepare samples.
    #[error("checkpoint: {0}")]
    Checkpoint(#[source] Box<ModelError>),

    /// Preparing one sample failed (unreadable or corrupt image, more `<image>` tags than
    /// images, tokenizer failure).
    #[error("dataset \"{dataset}\", {}: record {record}{}: {source}", file.display(), IdSuffix(id.as_deref()))]
    Sample {
        dataset: String,
        file: PathBuf,
        record: usize,
        id: Option<String>,
        #[source]
        source: Box<ModelError>,
    },

    /// A loader worker panicked while preparing a record (a bug, reported with the record).
    #[error("dataset \"{dataset}\", {}: record {record}{}: worker panicked: {message}", file.display(), IdSuffix(id.as_deref()))]
    WorkerPanicked {
        dataset: String,
        file: PathBuf,
        record: usize,
        id: Option<String>,
        message: String,
    },

    /// A loader worker thread could not be started.
    #[error("cannot start a data loader worker thread: {0}")]
    Spawn(#[source] std::io::Error),

    /// The loader's worker threads exited while results were still expected.
    #[error("the data loader's worker threads stopped unexpectedly")]
    WorkersGone,

    /// The tokenizer defines no pad token, which right-padding needs.
    #[error(
        "{}: the tokenizer has no `pad_token`; VILA's train.py adds `[PAD]` before training, so a trained checkpoint has one",
        path.display()
    )]
    NoPadToken { path: PathBuf },

    /// A data cursor that does not fit this sampler (resuming with another geometry).
    #[error("data cursor: {0}")]
    Cursor(String),

    /// A micro-batch cannot be collated (samples from different tile sizes).
    #[error("collate: {0}")]
    Collate(String),
}

impl DataError {
    /// A checkpoint error (boxed: `ModelError` is large and errors travel through channels).
    pub fn checkpoint(error: ModelError) -> Self {
        Self::Checkpoint(Box::new(error))
    }
}

/// ` (id "x")` after a record index, or nothing.
struct IdSuffix<'a>(Option<&'a str>);

impl fmt::Display for IdSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (id {id:?})"),
            None => Ok(()),
        }
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "built in memory".to_string();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
