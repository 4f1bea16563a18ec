//! Serde models and parsers for the Track 2 annotation files (wts.md §1.3–1.5):
//! caption JSON, bbox JSON, VQA JSON and the main-view CSV.
//!
//! Tolerance is deliberate and limited to what real data varies in (wts.md): phase labels as
//! digits or names, times and fps as strings or numbers, `image_id` as int or string,
//! `phase_number` as string or int, VQA option letters in any number. Anything else (an
//! unknown phase label, a missing field, an empty caption, malformed JSON) is a typed error
//! naming the file.

mod bbox;
mod caption;
mod lenient;
mod main_view;
mod phase;
mod vqa;

pub use bbox::{BBoxEntry, BBoxFile, parse_bbox, parse_bbox_str};
pub use caption::{CaptionFile, CaptionKind, CaptionPhase, parse_caption, parse_caption_str};
pub use main_view::{MainViews, parse_main_views, parse_main_views_str};
pub use phase::{Phase, Subject};
pub use vqa::{VqaEntry, VqaFile, VqaPhase, VqaQuestion, parse_vqa, parse_vqa_str};

use std::path::Path;

use crate::error::DatasetError;

/// Reads a whole annotation file as UTF-8 text.
pub(crate) fn read_text(path: &Path) -> Result<String, DatasetError> {
    std::fs::read_to_string(path).map_err(|e| DatasetError::io(path, e))
}

/// Parses `text` as JSON into `T`; the error names `path` (malformed, truncated or missing a
/// required field: serde_json's message says which, with line and column).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, DatasetError> {
    serde_json::from_str(text).map_err(|source| DatasetError::Json {
        path: path.to_path_buf(),
        source,
    })
}
