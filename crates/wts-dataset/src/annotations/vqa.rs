//! VQA JSON (2025; wts.md §1.5). Train/val files are a JSON list (normally one element) with
//! `id` plus `overhead_videos` / `vehicle_view` (WTS) or `videos` (BDD), holding either
//! `environment` (a list of questions) or `event_phase` (phases with `labels` *names*, times
//! and `conversations`). The public test file is a list of entries with `videos` and either
//! `event_phase` or top-level `conversations`, every question carrying an `id` (UUID).
//!
//! A question is `{question, a, b, c, ..., correct}`; the number of options varies, so the
//! single-letter keys are collected and sorted (as TrafficInternVL `transform_vqa_format.py`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::lenient;
use super::phase::Phase;
use crate::error::DatasetError;

/// One parsed VQA file.
#[derive(Clone, Debug, PartialEq)]
pub struct VqaFile {
    pub path: PathBuf,
    pub entries: Vec<VqaEntry>,
}

/// One element of the top-level list.
#[derive(Clone, Debug, PartialEq)]
pub struct VqaEntry {
    /// `id`, kept as text.
    pub id: Option<String>,
    /// `overhead_videos`, `vehicle_view` or `videos`.
    pub videos: Vec<String>,
    /// Scenario-level questions: `environment` (train/val) or top-level `conversations` (test).
    pub environment: Vec<VqaQuestion>,
    /// Phase questions, sorted by phase.
    pub phases: Vec<VqaPhase>,
}

/// One `event_phase` element of a VQA file.
#[derive(Clone, Debug, PartialEq)]
pub struct VqaPhase {
    pub phase: Phase,
    pub start_s: Option<f64>,
    pub end_s: Option<f64>,
    pub questions: Vec<VqaQuestion>,
}

/// A multiple-choice question.
#[derive(Clone, Debug, PartialEq)]
pub struct VqaQuestion {
    /// `id` (test file; a UUID string).
    pub id: Option<String>,
    pub question: String,
    /// `(letter, text)` sorted by letter.
    pub options: Vec<(char, String)>,
    /// The correct letter, lower-cased (absent in the test file).
    pub correct: Option<char>,
}

impl VqaQuestion {
    /// The text of option `letter`.
    pub fn option(&self, letter: char) -> Option<&str> {
        self.options
            .iter()
            .find(|(l, _)| *l == letter)
            .map(|(_, t)| t.as_str())
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTop {
    List(Vec<Map<String, Value>>),
    One(Map<String, Value>),
}

/// Reads and parses a VQA file.
pub fn parse_vqa(path: &Path) -> Result<VqaFile, DatasetError> {
    let text = super::read_text(path)?;
    parse_vqa_str(path, &text)
}

/// [`parse_vqa`] on text already read; `path` is only used in messages.
pub fn parse_vqa_str(path: &Path, text: &str) -> Result<VqaFile, DatasetError> {
    // Parse as a Value first so malformed/truncated JSON gets serde_json's own message.
    let value: Value = super::parse_json(path, text)?;
    let top: RawTop = serde_json::from_value(value).map_err(|_| {
        DatasetError::invalid(path, "expected a JSON list of objects (or one object)")
    })?;
    let objects = match top {
        RawTop::List(l) => l,
        RawTop::One(o) => vec![o],
    };
    let mut entries = Vec::with_capacity(objects.len());
    for (i, obj) in objects.iter().enumerate() {
        entries.push(entry(path, &format!("[{i}]"), obj)?);
    }
    Ok(VqaFile {
        path: path.to_path_buf(),
        entries,
    })
}

fn entry(path: &Path, at: &str, obj: &Map<String, Value>) -> Result<VqaEntry, DatasetError> {
    let bad = |m: String| DatasetError::invalid(path, format!("{at}{m}"));
    let mut videos = Vec::new();
    for key in ["overhead_videos", "vehicle_view", "videos"] {
        if let Some(v) = obj.get(key) {
            videos.extend(lenient::names(v).map_err(|m| bad(format!(".{key}: {m}")))?);
        }
    }
    let mut environment = Vec::new();
    for key in ["environment", "conversations"] {
        if let Some(v) = obj.get(key) {
            environment.extend(questions(path, &format!("{at}.{key}"), v)?);
        }
    }
    let mut phases = Vec::new();
    if let Some(v) = obj.get("event_phase") {
        let list = v
            .as_array()
            .ok_or_else(|| bad(".event_phase: expected a list".to_string()))?;
        for (j, p) in list.iter().enumerate() {
            let pat = format!("{at}.event_phase[{j}]");
            let pb = |m: String| DatasetError::invalid(path, format!("{pat}{m}"));
            let p = p
                .as_object()
                .ok_or_else(|| pb(": expected an object".to_string()))?;
            let labels = p
                .get("labels")
                .ok_or_else(|| pb(": missing field `labels`".to_string()))?;
            let phase =
                lenient::phase_of_labels(labels).map_err(|m| pb(format!(".labels: {m}")))?;
            let time = |key: &str| -> Result<Option<f64>, DatasetError> {
                match p.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => lenient::seconds(v)
                        .map(Some)
                        .map_err(|m| pb(format!(".{key}: {m}"))),
                }
            };
            let conv = p
                .get("conversations")
                .ok_or_else(|| pb(": missing field `conversations`".to_string()))?;
            phases.push(VqaPhase {
                phase,
                start_s: time("start_time")?,
                end_s: time("end_time")?,
                questions: questions(path, &format!("{pat}.conversations"), conv)?,
            });
        }
    }
    if environment.is_empty() && phases.is_empty() {
        return Err(bad(
            ": no questions (expected `environment`, `conversations` or `event_phase`)".to_string(),
        ));
    }
    phases.sort_by_key(|p| p.phase);
    Ok(VqaEntry {
        id: obj.get("id").and_then(lenient::id_text),
        videos,
        environment,
        phases,
    })
}

fn questions(path: &Path, at: &str, v: &Value) -> Result<Vec<VqaQuestion>, DatasetError> {
    let list = v.as_array().ok_or_else(|| {
        DatasetError::invalid(path, format!("{at}: expected a list of questions"))
    })?;
    list.iter()
        .enumerate()
        .map(|(k, q)| question(path, &format!("{at}[{k}]"), q))
        .collect()
}

fn question(path: &Path, at: &str, v: &Value) -> Result<VqaQuestion, DatasetError> {
    let bad = |m: String| DatasetError::invalid(path, format!("{at}{m}"));
    let obj = v
        .as_object()
        .ok_or_else(|| bad(": expected an object".to_string()))?;
    let question = obj
        .get("question")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    if question.is_empty() {
        return Err(bad(": missing or empty `question`".to_string()));
    }
    let mut options = BTreeMap::new();
    for (key, value) in obj {
        let mut chars = key.chars();
        if let (Some(c), None) = (chars.next(), chars.next())
            && c.is_ascii_alphabetic()
        {
            let text = match value {
                Value::String(s) => s.trim().to_string(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => return Err(bad(format!(".{key}: expected option text, got {other}"))),
            };
            if options.insert(c.to_ascii_lowercase(), text).is_some() {
                return Err(bad(format!(": option {c} given twice")));
            }
        }
    }
    if options.len() < 2 {
        return Err(bad(format!(
            ": expected at least two options (a, b, ...), got {}",
            options.len()
        )));
    }
    let correct = match obj.get("correct") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let c = s.trim().to_ascii_lowercase();
            let mut chars = c.chars();
            match (chars.next(), chars.next()) {
                (Some(l), None) if options.contains_key(&l) => Some(l),
                _ => {
                    return Err(bad(format!(
                        ".correct: {s:?} is not one of the option letters"
                    )));
                }
            }
        }
        Some(other) => return Err(bad(format!(".correct: expected a letter, got {other}"))),
    };
    Ok(VqaQuestion {
        id: obj.get("id").and_then(lenient::id_text),
        question: question.to_string(),
        options: options.into_iter().collect(),
        correct,
    })
}
