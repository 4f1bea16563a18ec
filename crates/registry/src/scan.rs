//! Per-record checks of a `LLaVADataset` file, following
//! `llava/data/dataset_impl/llava.py::LLaVADataset.process`:
//!
//! * `image` and `images` are a path or a list of paths (`make_list` in
//!   `llava/utils/utils.py` wraps anything that is not a list), `video` likewise; each is
//!   joined to `media_dir` and must exist inside it (see `media.rs`).
//! * `conversations` is a list of `{from, value}`; the first message must come from
//!   `human` (VILA raises ValueError otherwise) and senders are `human`, `gpt` or
//!   `system` (`llava/remote_code/tokenizer_utils.py::tokenize_conversation`), with no
//!   `system` message when the entry sets `no_system_prompt`.
//! * A `value` must be a non-blank string: VILA strips it and templates it, so an empty
//!   answer trains on nothing and an empty question is almost certainly broken data.

use std::path::Path;

use serde_json::Value;

use crate::error::ProblemLog;
use crate::media::{MediaKind, MediaRoot};
use crate::records::RecordSink;
use crate::report::Counts;

/// State while walking one dataset file.
pub(crate) struct Scan<'a> {
    file: &'a Path,
    media: Option<&'a MediaRoot>,
    no_system_prompt: bool,
    problems: &'a mut ProblemLog,
    /// Counts over the records seen so far.
    pub(crate) counts: Counts,
    /// Any record has a `video` key.
    pub(crate) has_video_key: bool,
    /// (first record index, number of records) with media although the entry has no
    /// `media_dir`; reported once by the caller rather than per record.
    pub(crate) media_without_root: Option<(usize, usize)>,
    /// The file itself had a problem (unreadable, bad JSON, bad line).
    pub(crate) unreadable: bool,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(
        file: &'a Path,
        media: Option<&'a MediaRoot>,
        no_system_prompt: bool,
        problems: &'a mut ProblemLog,
    ) -> Self {
        Self {
            file,
            media,
            no_system_prompt,
            problems,
            counts: Counts::default(),
            has_video_key: false,
            media_without_root: None,
            unreadable: false,
        }
    }

    fn problem(&mut self, index: usize, message: String) {
        self.problems.push(self.file, Some(index), message);
    }

    fn message(&mut self, index: usize, turn: usize, message: &Value) {
        let Some(obj) = message.as_object() else {
            self.problem(
                index,
                format!(
                    "message {turn} must be an object, found {}",
                    json_kind(message)
                ),
            );
            return;
        };
        let from = obj.get("from").and_then(Value::as_str);
        match from {
            Some("human") => self.counts.human_turns += 1,
            Some("gpt") => self.counts.gpt_turns += 1,
            Some("system") => {
                self.counts.system_turns += 1;
                if self.no_system_prompt {
                    self.problem(
                        index,
                        format!(
                            "message {turn} is a system message but the entry sets no_system_prompt (VILA raises ValueError)"
                        ),
                    );
                }
            }
            Some(other) => self.problem(
                index,
                format!("message {turn} has sender {other:?}; VILA accepts \"human\", \"gpt\" and \"system\""),
            ),
            None => self.problem(index, format!("message {turn} has no string \"from\"")),
        }
        if turn == 0
            && let Some(sender) = from
            && sender != "human"
        {
            self.problem(
                index,
                format!(
                    "first message is from {sender:?}; VILA requires \"human\" (LLaVADataset.process raises ValueError)"
                ),
            );
        }
        match obj.get("value") {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) => {
                self.problem(index, format!("message {turn} has an empty \"value\""))
            }
            Some(other) => self.problem(
                index,
                format!(
                    "message {turn} \"value\" must be a string, found {}",
                    json_kind(other)
                ),
            ),
            None => self.problem(index, format!("message {turn} has no \"value\"")),
        }
    }

    fn media_paths(&mut self, index: usize, key: &str, kind: MediaKind, value: &Value) -> bool {
        let paths: Vec<&Value> = match value {
            Value::Array(list) => list.iter().collect(),
            other => vec![other],
        };
        let mut any = false;
        for path in paths {
            let Some(path) = path.as_str() else {
                self.problem(
                    index,
                    format!(
                        "\"{key}\" entries must be path strings, found {}",
                        json_kind(path)
                    ),
                );
                continue;
            };
            any = true;
            match kind {
                MediaKind::Image => self.counts.images += 1,
                MediaKind::Video => self.counts.videos += 1,
            }
            if let Some(root) = self.media
                && let Err(message) = root.check(kind, path)
            {
                self.problem(index, message);
            }
        }
        any
    }
}

impl RecordSink for Scan<'_> {
    fn record(&mut self, index: usize, record: Value) {
        self.counts.records += 1;
        let Some(obj) = record.as_object() else {
            self.problem(
                index,
                format!("expected a JSON object, found {}", json_kind(&record)),
            );
            return;
        };

        match obj.get("conversations") {
            None => self.problem(index, "has no \"conversations\"".to_string()),
            Some(Value::Array(messages)) if messages.is_empty() => {
                self.problem(index, "\"conversations\" is empty".to_string());
            }
            Some(Value::Array(messages)) => {
                for (turn, message) in messages.iter().enumerate() {
                    self.message(index, turn, message);
                }
            }
            Some(other) => self.problem(
                index,
                format!(
                    "\"conversations\" must be a list, found {}",
                    json_kind(other)
                ),
            ),
        }

        let mut has_media = false;
        for (key, kind) in [
            ("image", MediaKind::Image),
            ("images", MediaKind::Image),
            ("video", MediaKind::Video),
        ] {
            let Some(value) = obj.get(key) else { continue };
            if kind == MediaKind::Video {
                self.has_video_key = true;
            }
            has_media |= self.media_paths(index, key, kind, value);
        }
        if has_media && self.media.is_none() {
            match &mut self.media_without_root {
                Some((_, count)) => *count += 1,
                None => self.media_without_root = Some((index, 1)),
            }
        }
    }

    fn unreadable(&mut self, index: Option<usize>, message: String) {
        self.unreadable = true;
        self.problems.push(self.file, index, message);
    }
}

/// A short description of a JSON value's type, for messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
