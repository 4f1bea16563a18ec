//! Discovery of scenarios, views, videos and annotation files in a WTS or BDD_PC_5K root for
//! one split (wts.md §1.2). Missing pieces (a view without caption, a video without bbox file,
//! a captioned scenario without videos) are recorded in [`Scenario::missing`], never fatal, so
//! the converter can report them. Everything is sorted by name: discovery is deterministic.
//!
//! Split folders: train/val use `<kind>/<split>/`; the public test part nests one level more
//! (`videos/test/public/`, `caption/test/public_challenge/`, `bbox_*/.../test/public/`) and
//! ships its boxes in a sibling root `<root>_BBOX` (wts.md §1.2 tree). Both are tried.

mod bdd;
mod fsutil;
mod shared;
mod wts;

pub use bdd::discover_bdd;
pub use shared::shared_vqa_files;
pub use wts::discover_wts;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::annotations::Subject;

/// A dataset split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    /// The folder name: `train`, `val` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// Test annotations have times but no captions or answers (wts.md §1.2).
    pub fn has_answers(self) -> bool {
        self != Split::Test
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "val" | "valid" | "validation" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            other => Err(format!(
                "unknown split {other:?} (expected train, val or test)"
            )),
        }
    }
}

/// Which dataset a scenario comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Wts,
    Bdd,
}

/// A camera view. BDD_PC_5K's single ego camera counts as [`View::Vehicle`]: it is the
/// vehicle's own camera (wts.md §1.1), like WTS `vehicle_view`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    Overhead,
    Vehicle,
}

impl View {
    /// The folder name: `overhead_view` or `vehicle_view`.
    pub fn dir_name(self) -> &'static str {
        match self {
            View::Overhead => "overhead_view",
            View::Vehicle => "vehicle_view",
        }
    }
}

/// A bbox file per subject (WTS has both; BDD pedestrian only, wts.md §1.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectFiles {
    pub pedestrian: Option<PathBuf>,
    pub vehicle: Option<PathBuf>,
}

impl SubjectFiles {
    /// The file for `subject`.
    pub fn get(&self, subject: Subject) -> Option<&Path> {
        match subject {
            Subject::Pedestrian => self.pedestrian.as_deref(),
            Subject::Vehicle => self.vehicle.as_deref(),
        }
    }
}

/// One video file of a scenario with its bbox files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoEntry {
    pub view: View,
    pub path: PathBuf,
    /// File name, e.g. `20230707_12_SN17_T1_Camera1_0.mp4`.
    pub file_name: String,
    /// File name without `.mp4`; bbox files are `<stem>_bbox.json`.
    pub stem: String,
    /// The camera part of an overhead name: `Camera1_0` (older naming) or `192.168.0.14_1`
    /// (IP-style); `None` when the file is named after the scenario only (normal_trimmed) or for
    /// vehicle/ego videos.
    pub camera: Option<String>,
    pub bbox_annotated: SubjectFiles,
    pub bbox_generated: SubjectFiles,
}

/// What a VQA file is about (its folder: `environment`, `overhead_view`, `vehicle_view`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VqaRole {
    Environment,
    Overhead,
    Vehicle,
}

/// A VQA file and its role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VqaRef {
    pub role: VqaRole,
    pub path: PathBuf,
}

/// Something the layout expected and did not find.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Missing {
    /// What is missing, e.g. `"vehicle_view caption"`, `"bbox_annotated pedestrian"`.
    pub what: String,
    /// Where it was looked for.
    pub path: PathBuf,
}

/// One scenario (WTS) or video (BDD) of a split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    pub source: Source,
    /// Submission key: WTS scenario name (normal ones without `normal_trimmed/`), BDD video
    /// stem (wts.md §2.2).
    pub name: String,
    /// Under `normal_trimmed/`.
    pub normal: bool,
    pub split: Split,
    /// Videos sorted by view (overhead first) then file name.
    pub videos: Vec<VideoEntry>,
    /// The overhead caption file (WTS).
    pub overhead_caption: Option<PathBuf>,
    /// The vehicle-view caption file (WTS) or the BDD caption file.
    pub vehicle_caption: Option<PathBuf>,
    /// VQA files, sorted.
    pub vqa: Vec<VqaRef>,
    /// Pieces looked for and not found, sorted.
    pub missing: Vec<Missing>,
}

impl Scenario {
    /// The caption file whose times apply to videos of `view`.
    pub fn caption_for(&self, view: View) -> Option<&Path> {
        match view {
            View::Overhead => self.overhead_caption.as_deref(),
            View::Vehicle => self.vehicle_caption.as_deref(),
        }
    }
}
