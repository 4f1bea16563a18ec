//! BBox JSON (wts.md §1.4): a COCO-like `annotations` list of `{image_id, bbox, auto-generated,
//! phase_number}`, in two variants: `bbox_annotated` (first frame of each phase) and
//! `bbox_generated` (every frame, tracked). Same schema for both.
//!
//! Varying types accepted: `image_id` int or string with trailing digits (tsda
//! `extract/utils.py`), `bbox` floats (WTS) or ints (BDD), `phase_number` string (WTS) or int
//! (BDD, ARV index).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::lenient;
use super::phase::Phase;
use crate::error::DatasetError;
use crate::geometry::BBox;

/// One parsed bbox file; entries sorted by frame (stable for equal frames).
#[derive(Clone, Debug, PartialEq)]
pub struct BBoxFile {
    pub path: PathBuf,
    pub entries: Vec<BBoxEntry>,
}

/// One annotation: a box on annotation frame `frame`.
#[derive(Clone, Debug, PartialEq)]
pub struct BBoxEntry {
    /// `image_id`: the frame index in the annotation's frame numbering (wts.md §5).
    pub frame: u64,
    pub bbox: BBox,
    /// `auto-generated`: true for Track-Anything tracks, false for human boxes.
    pub auto_generated: bool,
    /// `phase_number`, when the entry has one.
    pub phase: Option<Phase>,
}

impl BBoxFile {
    /// The first box of `phase` (lowest frame), as `bbox_annotated` stores it: the first frame
    /// of each phase (CityLLaVA uses it as the phase's frame).
    pub fn first_of_phase(&self, phase: Phase) -> Option<&BBoxEntry> {
        self.entries.iter().find(|e| e.phase == Some(phase))
    }

    /// The box on annotation frame `frame`, if any (first one when repeated).
    pub fn at_frame(&self, frame: u64) -> Option<&BBoxEntry> {
        let i = self.entries.partition_point(|e| e.frame < frame);
        self.entries.get(i).filter(|e| e.frame == frame)
    }
}

#[derive(Deserialize)]
struct RawBBoxFile {
    annotations: Vec<RawEntry>,
}

#[derive(Deserialize)]
struct RawEntry {
    image_id: Value,
    bbox: Vec<Value>,
    #[serde(default, rename = "auto-generated")]
    auto_generated: Option<Value>,
    #[serde(default)]
    phase_number: Option<Value>,
}

/// Reads and parses a bbox file (annotated or generated).
pub fn parse_bbox(path: &Path) -> Result<BBoxFile, DatasetError> {
    let text = super::read_text(path)?;
    parse_bbox_str(path, &text)
}

/// [`parse_bbox`] on text already read; `path` is only used in messages.
pub fn parse_bbox_str(path: &Path, text: &str) -> Result<BBoxFile, DatasetError> {
    let raw: RawBBoxFile = super::parse_json(path, text)?;
    let mut entries = Vec::with_capacity(raw.annotations.len());
    for (i, e) in raw.annotations.iter().enumerate() {
        let at = |field: &str, m: String| {
            DatasetError::invalid(path, format!("annotations[{i}].{field}: {m}"))
        };
        let frame = lenient::frame_id(&e.image_id).map_err(|m| at("image_id", m))?;
        if e.bbox.len() != 4 {
            return Err(at(
                "bbox",
                format!(
                    "expected [x, y, width, height], got {} values",
                    e.bbox.len()
                ),
            ));
        }
        let mut v = [0.0; 4];
        for (slot, value) in v.iter_mut().zip(&e.bbox) {
            *slot = lenient::number(value).map_err(|m| at("bbox", m))?;
        }
        if v[2] < 0.0 || v[3] < 0.0 {
            return Err(at("bbox", format!("negative width or height in {v:?}")));
        }
        let auto_generated = match &e.auto_generated {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(other) => {
                return Err(at(
                    "auto-generated",
                    format!("expected a bool, got {other}"),
                ));
            }
        };
        let phase = match &e.phase_number {
            None | Some(Value::Null) => None,
            Some(v) => Some(lenient::phase_scalar(v).map_err(|m| at("phase_number", m))?),
        };
        entries.push(BBoxEntry {
            frame,
            bbox: BBox::from_xywh(v),
            auto_generated,
            phase,
        });
    }
    entries.sort_by_key(|e| e.frame);
    Ok(BBoxFile {
        path: path.to_path_buf(),
        entries,
    })
}
