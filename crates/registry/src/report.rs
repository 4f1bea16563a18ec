//! The public result types of validation, serialisable so a binary can print them as
//! JSON, and the options that tune it.

use std::path::PathBuf;

use serde::Serialize;

/// Knobs for [`crate::validate_with`].
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// How many problems are kept in the error (all are counted).
    pub max_problems: usize,
    /// VILA's `$VILA_SLICE_FOLDER`. When set, `name@subset` items are checked against
    /// `<slice_folder>/<subset>/<name>.json`, the list of record indices VILA drops
    /// (`llava/data/builder.py::build_dataset`).
    pub slice_folder: Option<PathBuf>,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self {
            max_problems: 20,
            slice_folder: None,
        }
    }
}

/// Per-dataset counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Records in the file.
    pub records: usize,
    /// Image paths (`image` plus `images`).
    pub images: usize,
    /// Video paths.
    pub videos: usize,
    /// Messages from `human`.
    pub human_turns: usize,
    /// Messages from `gpt`.
    pub gpt_turns: usize,
    /// Messages from `system`.
    pub system_turns: usize,
}

/// What validation found for one mixture item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetReport {
    /// Registry name.
    pub name: String,
    /// `name*N` repeat count.
    pub repeat: usize,
    /// `name@subset`, if any.
    pub subset: Option<String>,
    /// Hydra target of the entry.
    pub target: String,
    /// The dataset file.
    pub data_path: PathBuf,
    /// The media root.
    pub media_dir: Option<PathBuf>,
    /// `is_video` in the entry, or any record has `video` (VILA infers it the same way
    /// in `LLaVADataset.__init__`).
    pub is_video: bool,
    /// Counts over all records of the file.
    #[serde(flatten)]
    pub counts: Counts,
    /// Records left after the subset's drop list (before VILA's global-batch padding);
    /// None when there is no subset or no slice folder was given.
    pub subset_records: Option<usize>,
}

/// The result of a successful validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationReport {
    /// One report per mixture item, in mixture order.
    pub datasets: Vec<DatasetReport>,
    /// Σ (subset_records or records) × repeat: samples in one epoch before VILA pads
    /// each dataset up to a multiple of the global batch size.
    pub samples_per_epoch: usize,
}
