//! `view_used_as_main_reference_for_multiview_scenario.csv` (wts.md §1.2): a header row, then
//! `scenario,video1.mp4,video2.mp4,...` with up to 4 overhead views the annotators mainly used.
//! CityLLaVA skips the header with `next(reader)` and keeps only the listed overhead views.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::DatasetError;

/// Scenario → the overhead video file names listed for it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MainViews {
    pub views: BTreeMap<String, BTreeSet<String>>,
}

impl MainViews {
    /// True if `scenario` has a row.
    pub fn has_scenario(&self, scenario: &str) -> bool {
        self.views.contains_key(scenario)
    }

    /// True if `video_file` (a file name such as `..._Camera1_0.mp4`) is listed for `scenario`.
    /// A name listed without the `.mp4` extension matches too.
    pub fn is_main(&self, scenario: &str, video_file: &str) -> bool {
        let stem = video_file.strip_suffix(".mp4").unwrap_or(video_file);
        self.views
            .get(scenario)
            .is_some_and(|s| s.contains(video_file) || s.contains(stem))
    }
}

/// Reads and parses the main-view CSV.
pub fn parse_main_views(path: &Path) -> Result<MainViews, DatasetError> {
    let text = super::read_text(path)?;
    parse_main_views_str(path, &text)
}

/// [`parse_main_views`] on text already read; `path` is only used in messages.
pub fn parse_main_views_str(path: &Path, text: &str) -> Result<MainViews, DatasetError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = MainViews::default();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|source| DatasetError::Csv {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cells = record.iter().filter(|c| !c.is_empty());
        let Some(scenario) = cells.next() else {
            continue; // blank line
        };
        let videos: BTreeSet<String> = cells.map(str::to_string).collect();
        if videos.is_empty() {
            return Err(DatasetError::invalid(
                path,
                format!("row {}: scenario {scenario} lists no video", i + 2),
            ));
        }
        out.views
            .entry(scenario.to_string())
            .or_default()
            .extend(videos);
    }
    Ok(out)
}
