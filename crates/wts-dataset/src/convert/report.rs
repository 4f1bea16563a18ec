//! What a conversion did: [`ConvertReport`] (returned) and `report.json` (written).

use std::path::PathBuf;

use serde::Serialize;

use crate::error::DatasetError;

/// Something left out of the dataset, with the file at fault and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SkippedItem {
    /// What was left out, e.g. `20230707_12_SN17_T1/20230707_12_SN17_T1_Camera1_0.mp4 phase 2`.
    pub item: String,
    /// The file at fault.
    pub file: PathBuf,
    /// Why (the error message, which names the file and what is wrong).
    pub reason: String,
}

impl SkippedItem {
    /// A skipped item caused by `err`; the file is the one the error names when it names one.
    pub fn from_error(
        item: impl Into<String>,
        fallback_file: impl Into<PathBuf>,
        err: &DatasetError,
    ) -> Self {
        let file = match err {
            DatasetError::Io { path, .. }
            | DatasetError::Json { path, .. }
            | DatasetError::Csv { path, .. }
            | DatasetError::Invalid { path, .. }
            | DatasetError::Video { path, .. }
            | DatasetError::Image { path, .. } => path.clone(),
            _ => fallback_file.into(),
        };
        SkippedItem {
            item: item.into(),
            file,
            reason: err.to_string(),
        }
    }
}

/// The result of [`convert`](super::convert).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConvertReport {
    /// `<out>/<NAME>_dataset/dataset.json`.
    pub dataset_json: PathBuf,
    /// Samples in `dataset.json`.
    pub samples: usize,
    /// Images encoded and written by this run.
    pub images_written: usize,
    /// Images kept from a previous run (same work item, per the manifest).
    pub images_reused: usize,
    /// Items left out, sorted; also in `report.json`.
    pub skipped: Vec<SkippedItem>,
    /// Optional pieces not found (a view without bbox file, a listed video absent, ...); they
    /// do not remove samples but are listed in `report.json`.
    pub missing: Vec<SkippedItem>,
}

/// `report.json`: the counts and every skipped / missing item.
#[derive(Serialize)]
pub(crate) struct ReportFile<'a> {
    pub samples: usize,
    pub images: usize,
    pub skipped: &'a [SkippedItem],
    pub missing: &'a [SkippedItem],
}
