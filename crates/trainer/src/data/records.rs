//! VILA `LLaVADataset` records, read into memory as VILA does (`local_load_or_hf_load` →
//! `llava/utils/io.py::load`: a `.json` file is one list, a `.jsonl` file one record per
//! line).
//!
//! A record is `{id?, image? | images?, conversations: [{from: human|gpt|system, value}]}`;
//! `image` and `images` are a path or a list of paths, taken in that order (`image` first,
//! then `images`: `llava/data/dataset_impl/llava.py::LLaVADataset.process`). The registry
//! crate's validation has already checked every record and media path before this runs, so
//! the checks here are the ones it does not make: video records (VILA samples their frames
//! with OpenCV, which this trainer does not do) and more `<image>` tags than images (VILA
//! drops every tag and silently trains on what is left; we refuse, like nvila-model's
//! processor, and report it before training starts rather than at step N).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use nvila_model::processor::conversation::count_image_tags;
use nvila_model::processor::{Role, Turn};
use serde_json::Value;

use super::error::DataError;

/// One training record of a dataset file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's `id`, if it has one (numbers are kept as their JSON text).
    pub id: Option<String>,
    /// Image paths relative to the dataset's `media_dir`, `image` first then `images`.
    pub images: Vec<String>,
    /// The conversation, first turn from `human`.
    pub turns: Vec<Turn>,
}

/// Reads every record of a `.json` or `.jsonl` dataset file.
pub fn read_records(path: &Path) -> Result<Vec<Record>, DataError> {
    let name = path.to_string_lossy();
    let file = File::open(path).map_err(|source| DataError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = BufReader::new(file);
    let values: Vec<Value> = if name.ends_with(".jsonl") {
        let mut out = Vec::new();
        for (index, line) in reader.lines().enumerate() {
            let line = line.map_err(|source| DataError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let value = serde_json::from_str(&line).map_err(|e| DataError::Record {
                file: path.to_path_buf(),
                record: index,
                id: None,
                message: format!("invalid JSON: {e}"),
            })?;
            out.push(value);
        }
        out
    } else if name.ends_with(".json") {
        serde_json::from_reader(reader).map_err(|e| DataError::File {
            path: path.to_path_buf(),
            message: format!("expected a JSON list of records: {e}"),
        })?
    } else {
        return Err(DataError::File {
            path: path.to_path_buf(),
            message: "a dataset file must end in .json or .jsonl".to_string(),
        });
    };
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| parse_record(path, index, value))
        .collect()
}

/// One record from its JSON value; errors name `file` and `index`.
pub fn parse_record(file: &Path, index: usize, value: Value) -> Result<Record, DataError> {
    let Value::Object(mut obj) = value else {
        return Err(bad(file, index, None, "a record must be a JSON object"));
    };
    let id = match obj.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    let fail = |message: String| bad(file, index, id.clone(), &message);

    if obj.contains_key("video") {
        return Err(fail(
            "has a \"video\"; video records are not supported by this trainer (VILA samples \
             their frames with OpenCV)"
                .to_string(),
        ));
    }
    let mut images = Vec::new();
    for key in ["image", "images"] {
        match obj.remove(key) {
            None => {}
            Some(Value::String(s)) => images.push(s),
            Some(Value::Array(list)) => {
                for v in list {
                    match v {
                        Value::String(s) => images.push(s),
                        other => return Err(fail(format!("\"{key}\" holds a non-string {other}"))),
                    }
                }
            }
            Some(other) => {
                return Err(fail(format!(
                    "\"{key}\" must be a path or a list of paths, found {other}"
                )));
            }
        }
    }

    let Some(Value::Array(messages)) = obj.remove("conversations") else {
        return Err(fail("\"conversations\" must be a list".to_string()));
    };
    let mut turns = Vec::with_capacity(messages.len());
    for (k, message) in messages.into_iter().enumerate() {
        let from = message.get("from").and_then(Value::as_str);
        let role = match from {
            Some("human") => Role::Human,
            Some("gpt") => Role::Gpt,
            Some("system") => Role::System,
            other => {
                return Err(fail(format!(
                    "message {k} has sender {other:?}; expected \"human\", \"gpt\" or \"system\""
                )));
            }
        };
        let Some(text) = message.get("value").and_then(Value::as_str) else {
            return Err(fail(format!("message {k} has no string \"value\"")));
        };
        turns.push(Turn::new(role, text));
    }
    match turns.first() {
        None => return Err(fail("\"conversations\" is empty".to_string())),
        Some(t) if t.from != Role::Human => {
            return Err(fail(
                "the first message must be from \"human\" (VILA raises ValueError)".to_string(),
            ));
        }
        Some(_) => {}
    }
    let tags: usize = turns.iter().map(|t| count_image_tags(&t.value)).sum();
    if tags > images.len() {
        return Err(fail(format!(
            "the conversation has {tags} `<image>` tags but the record lists {} image(s)",
            images.len()
        )));
    }
    Ok(Record { id, images, turns })
}

fn bad(file: &Path, record: usize, id: Option<String>, message: &str) -> DataError {
    DataError::Record {
        file: PathBuf::from(file),
        record,
        id,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_then_images_in_order() {
        let r = parse_record(
            Path::new("d.json"),
            0,
            json!({"id": 7, "images": ["b.jpg", "c.jpg"], "image": "a.jpg",
                   "conversations": [{"from": "human", "value": "<image>hi"},
                                     {"from": "gpt", "value": "yo"}]}),
        )
        .unwrap();
        assert_eq!(r.images, ["a.jpg", "b.jpg", "c.jpg"]);
        assert_eq!(r.id.as_deref(), Some("7"));
        assert_eq!(r.turns.len(), 2);
    }

    #[test]
    fn too_many_tags_names_the_record() {
        let err = parse_record(
            Path::new("d.json"),
            3,
            json!({"id": "x", "image": "a.jpg",
                   "conversations": [{"from": "human", "value": "<image><image>hi"},
                                     {"from": "gpt", "value": "yo"}]}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("d.json: record 3 (id \"x\")"), "{err}");
        assert!(err.contains("2 `<image>` tags"), "{err}");
    }
}
