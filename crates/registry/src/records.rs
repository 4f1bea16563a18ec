//! Streaming reader for VILA dataset files.
//!
//! VILA loads `data_path` with `llava/utils/io.py::load`, which picks the reader by file
//! extension (case-sensitive, longest match first, so `.jsonl` before `.json`):
//! `.json` is one JSON document (a list of records for `LLaVADataset`) and `.jsonl` is
//! `json.loads` applied to every line from `readlines()`, so a blank line is an error
//! there too. We stream records one at a time instead of building the whole list, so a
//! multi-gigabyte dataset is checked in constant memory.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::Value;

/// How a dataset file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// A single JSON array of records.
    Json,
    /// One JSON record per line.
    Jsonl,
}

/// The format VILA's `io.load` would use for `path`, or None if it cannot load it.
pub(crate) fn format_of(path: &Path) -> Option<Format> {
    let s = path.to_string_lossy();
    if s.ends_with(".jsonl") {
        Some(Format::Jsonl)
    } else if s.ends_with(".json") {
        Some(Format::Json)
    } else {
        None
    }
}

/// Receives what the reader finds, in file order.
pub(crate) trait RecordSink {
    /// A record that parsed (`index` is 0-based; for `.jsonl`, the line index).
    fn record(&mut self, index: usize, record: Value);
    /// Something wrong with the file rather than a record's content: unreadable, bad
    /// JSON, a blank `.jsonl` line. `index` is the line for `.jsonl`.
    fn unreadable(&mut self, index: Option<usize>, message: String);
}

/// Feeds every record to `sink`. A `.json` file stops at its first syntax error; a
/// `.jsonl` file reports each bad line and goes on.
pub(crate) fn read_records(path: &Path, format: Format, sink: &mut dyn RecordSink) {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return sink.unreadable(None, format!("cannot open: {e}")),
    };
    let reader = BufReader::new(file);
    match format {
        Format::Json => read_json(reader, sink),
        Format::Jsonl => read_jsonl(reader, sink),
    }
}

fn read_json(reader: BufReader<File>, sink: &mut dyn RecordSink) {
    let mut seen = 0usize;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = de
        .deserialize_seq(RecordSeq {
            sink: &mut *sink,
            seen: &mut seen,
        })
        .and_then(|()| de.end());
    if let Err(e) = result {
        let message = if e.is_data() {
            // serde's type error: the top level is not an array.
            format!("expected a JSON array of records: {e}")
        } else if seen == 0 {
            format!("invalid JSON: {e}")
        } else {
            format!("invalid JSON after record {}: {e}", seen - 1)
        };
        sink.unreadable(None, message);
    }
}

/// Visits the top-level array, handing each element to the sink as it is parsed.
struct RecordSeq<'a> {
    sink: &'a mut dyn RecordSink,
    seen: &'a mut usize,
}

impl<'de> Visitor<'de> for RecordSeq<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element::<Value>()? {
            self.sink.record(*self.seen, record);
            *self.seen += 1;
        }
        Ok(())
    }
}

fn read_jsonl(reader: BufReader<File>, sink: &mut dyn RecordSink) {
    for (index, line) in reader.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                // Invalid UTF-8 or an I/O error: the rest of the file cannot be trusted.
                sink.unreadable(Some(index), format!("cannot read line: {e}"));
                return;
            }
        };
        if line.trim().is_empty() {
            sink.unreadable(
                Some(index),
                "blank line (VILA's io.load_jsonl parses every line as JSON and fails on it)"
                    .to_string(),
            );
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(record) => sink.record(index, record),
            Err(e) => sink.unreadable(Some(index), format!("invalid JSON: {e}")),
        }
    }
}
