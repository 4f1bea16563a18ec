//! Event phases (labels `0..4`) and caption subjects.
//!
//! The map `0=prerecognition, 1=recognition, 2=judgement, 3=action, 4=avoidance` is the one in
//! the official README and in CityLLaVA `transform_llava_format.py`, AIO_ISC `utils.py`,
//! TrafficInternVL and tsda (wts.md §1.1). Caption files use digits (WTS) or names (BDD);
//! names appear as `pre-recognition` and `judgment` too (wts.md §1.3), so both are accepted.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One of the five event phases, ordered as the labels `0..4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Prerecognition = 0,
    Recognition = 1,
    Judgement = 2,
    Action = 3,
    Avoidance = 4,
}

impl Phase {
    /// All phases in label order.
    pub const ALL: [Phase; 5] = [
        Phase::Prerecognition,
        Phase::Recognition,
        Phase::Judgement,
        Phase::Action,
        Phase::Avoidance,
    ];

    /// Parses a label: a digit `"0".."4"` or a name, case-insensitive, ignoring `-`, `_` and
    /// spaces (so `pre-recognition`), with the spelling `judgment` accepted. `None` if unknown.
    pub fn parse(label: &str) -> Option<Phase> {
        let key: String = label
            .trim()
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        match key.as_str() {
            "0" | "prerecognition" => Some(Phase::Prerecognition),
            "1" | "recognition" => Some(Phase::Recognition),
            "2" | "judgement" | "judgment" => Some(Phase::Judgement),
            "3" | "action" => Some(Phase::Action),
            "4" | "avoidance" => Some(Phase::Avoidance),
            _ => None,
        }
    }

    /// The label digit `0..4`, as submissions use it (wts.md §2.2).
    pub fn digit(self) -> u8 {
        self as u8
    }

    /// The phase name as the prompts use it (`"judgement"`, with the e: wts.md §1.1).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prerecognition => "prerecognition",
            Phase::Recognition => "recognition",
            Phase::Judgement => "judgement",
            Phase::Action => "action",
            Phase::Avoidance => "avoidance",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whom a caption describes: every phase has one caption per subject (wts.md §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    Pedestrian,
    Vehicle,
}

impl Subject {
    /// Both subjects, pedestrian first (the order of the caption fields).
    pub const ALL: [Subject; 2] = [Subject::Pedestrian, Subject::Vehicle];

    /// `"pedestrian"` or `"vehicle"`.
    pub fn name(self) -> &'static str {
        match self {
            Subject::Pedestrian => "pedestrian",
            Subject::Vehicle => "vehicle",
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
