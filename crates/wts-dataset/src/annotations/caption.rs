//! Caption JSON (wts.md §1.3): WTS overhead (`id`, `overhead_videos`), WTS vehicle view
//! (`vehicle_view`, no `id`), BDD (`id`, `video_name`, `fps` as a string), normal_trimmed
//! (same as WTS) and test files (times, no captions).
//!
//! Phases are kept in label order: the official sample lists them 4 → 0, so file order means
//! nothing (wts.md §1.3).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::lenient;
use super::phase::{Phase, Subject};
use crate::error::DatasetError;

/// Which variant of the caption schema a file follows (decided by its keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptionKind {
    /// WTS overhead file: `overhead_videos` list (normal_trimmed too).
    Overhead,
    /// WTS vehicle-view file: `vehicle_view` string; its times are relative to that video.
    Vehicle,
    /// BDD_PC_5K file: `video_name` and `fps`.
    Bdd,
    /// None of the video keys (only `event_phase`): accepted, the layout says which view.
    Unknown,
}

/// One parsed caption file.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptionFile {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    pub kind: CaptionKind,
    /// `id` (WTS overhead and BDD files), kept as text.
    pub id: Option<String>,
    /// Video file names the file names (`overhead_videos`, `vehicle_view` or `video_name`).
    pub videos: Vec<String>,
    /// `fps` (BDD only; wts.md §1.3: a string such as `"29.970"`). WTS files have none.
    pub fps: Option<f64>,
    /// Phases sorted by label.
    pub phases: Vec<CaptionPhase>,
}

/// One `event_phase` element.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptionPhase {
    pub phase: Phase,
    /// Seconds from the start of *this view's* video (wts.md §5).
    pub start_s: f64,
    pub end_s: f64,
    /// `None` in test files (timestamps only).
    pub caption_pedestrian: Option<String>,
    pub caption_vehicle: Option<String>,
}

impl CaptionPhase {
    /// The caption for `subject`, if present.
    pub fn caption(&self, subject: Subject) -> Option<&str> {
        match subject {
            Subject::Pedestrian => self.caption_pedestrian.as_deref(),
            Subject::Vehicle => self.caption_vehicle.as_deref(),
        }
    }
}

impl CaptionFile {
    /// The phase entry with label `phase`.
    pub fn phase(&self, phase: Phase) -> Option<&CaptionPhase> {
        self.phases.iter().find(|p| p.phase == phase)
    }
}

#[derive(Deserialize)]
struct RawCaption {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    overhead_videos: Option<Value>,
    #[serde(default)]
    vehicle_view: Option<Value>,
    #[serde(default)]
    video_name: Option<Value>,
    #[serde(default)]
    fps: Option<Value>,
    event_phase: Vec<RawPhase>,
}

#[derive(Deserialize)]
struct RawPhase {
    labels: Value,
    #[serde(default)]
    caption_pedestrian: Option<String>,
    #[serde(default)]
    caption_vehicle: Option<String>,
    start_time: Value,
    end_time: Value,
}

/// Reads and parses a caption file. With `require_captions` (train/val) both captions of every
/// phase must be present and non-empty; without (test), captions are optional and empty ones
/// read as absent.
pub fn parse_caption(path: &Path, require_captions: bool) -> Result<CaptionFile, DatasetError> {
    let text = super::read_text(path)?;
    parse_caption_str(path, &text, require_captions)
}

/// [`parse_caption`] on text already read; `path` is only used in messages.
pub fn parse_caption_str(
    path: &Path,
    text: &str,
    require_captions: bool,
) -> Result<CaptionFile, DatasetError> {
    let raw: RawCaption = super::parse_json(path, text)?;
    let bad = |msg: String| DatasetError::invalid(path, msg);

    let (kind, videos) = if let Some(v) = &raw.video_name {
        (
            CaptionKind::Bdd,
            lenient::names(v).map_err(|m| bad(format!("video_name: {m}")))?,
        )
    } else if let Some(v) = &raw.overhead_videos {
        (
            CaptionKind::Overhead,
            lenient::names(v).map_err(|m| bad(format!("overhead_videos: {m}")))?,
        )
    } else if let Some(v) = &raw.vehicle_view {
        (
            CaptionKind::Vehicle,
            lenient::names(v).map_err(|m| bad(format!("vehicle_view: {m}")))?,
        )
    } else {
        (CaptionKind::Unknown, Vec::new())
    };
    let fps = match &raw.fps {
        None | Some(Value::Null) => None,
        Some(v) => {
            let f = lenient::number(v).map_err(|m| bad(format!("fps: {m}")))?;
            if f <= 0.0 {
                return Err(bad(format!("fps: must be positive, got {f}")));
            }
            Some(f)
        }
    };
    if raw.event_phase.is_empty() {
        return Err(bad("event_phase is empty".to_string()));
    }

    let mut phases = Vec::with_capacity(raw.event_phase.len());
    for (i, p) in raw.event_phase.iter().enumerate() {
        let at = |field: &str, m: String| bad(format!("event_phase[{i}].{field}: {m}"));
        let phase = lenient::phase_of_labels(&p.labels).map_err(|m| at("labels", m))?;
        let start_s = lenient::seconds(&p.start_time).map_err(|m| at("start_time", m))?;
        let end_s = lenient::seconds(&p.end_time).map_err(|m| at("end_time", m))?;
        if end_s < start_s {
            return Err(at(
                "end_time",
                format!("{end_s} s is before start_time {start_s} s"),
            ));
        }
        let caption = |field: &str, c: &Option<String>| -> Result<Option<String>, DatasetError> {
            let c = c.as_deref().map(str::trim).filter(|c| !c.is_empty());
            match c {
                Some(c) => Ok(Some(c.to_string())),
                None if require_captions => Err(at(
                    field,
                    format!("empty or missing caption (phase {phase})"),
                )),
                None => Ok(None),
            }
        };
        let caption_pedestrian = caption("caption_pedestrian", &p.caption_pedestrian)?;
        let caption_vehicle = caption("caption_vehicle", &p.caption_vehicle)?;
        if phases.iter().any(|q: &CaptionPhase| q.phase == phase) {
            return Err(at("labels", format!("phase {phase} is listed twice")));
        }
        phases.push(CaptionPhase {
            phase,
            start_s,
            end_s,
            caption_pedestrian,
            caption_vehicle,
        });
    }
    phases.sort_by_key(|p| p.phase);

    Ok(CaptionFile {
        path: path.to_path_buf(),
        kind,
        id: raw.id.as_ref().and_then(lenient::id_text),
        videos,
        fps,
        phases,
    })
}
