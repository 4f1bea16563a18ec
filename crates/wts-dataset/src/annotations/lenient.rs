//! Conversions from loosely typed JSON values, for the fields whose type varies in real data
//! (wts.md §1.3–1.4): times and fps as strings or numbers, labels as a list or a scalar,
//! `image_id` as an int or a string ending in digits (tsda `extract/utils.py`).
//!
//! Each function returns a message fragment on failure; callers prefix the file and field.

use serde_json::Value;

use super::phase::Phase;

/// A non-negative finite number given as a JSON number or a numeric string (`"39.395"`).
pub(crate) fn seconds(v: &Value) -> Result<f64, String> {
    let x = number(v)?;
    if x < 0.0 {
        return Err(format!("negative value {x}"));
    }
    Ok(x)
}

/// A finite number given as a JSON number or a numeric string.
pub(crate) fn number(v: &Value) -> Result<f64, String> {
    let x = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match x {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(format!("expected a number, got {v}")),
    }
}

/// The phase of a `labels` value: a list holding one label, or a bare label (string or int).
pub(crate) fn phase_of_labels(v: &Value) -> Result<Phase, String> {
    match v {
        Value::Array(items) => match items.as_slice() {
            [one] => phase_scalar(one),
            [] => Err("empty labels list".to_string()),
            _ => Err(format!("expected one label, got {v}")),
        },
        other => phase_scalar(other),
    }
}

/// A phase given as a string (digit or name) or an integer.
pub(crate) fn phase_scalar(v: &Value) -> Result<Phase, String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("expected a phase label, got {other}")),
    };
    Phase::parse(&text).ok_or_else(|| {
        format!(
            "unknown phase label {text:?} (expected 0-4 or prerecognition, recognition, \
             judgement, action, avoidance)"
        )
    })
}

/// A frame number: a non-negative integer, or a string whose trailing digits are the number
/// (`"000723"`, `"video1004_000723"`).
pub(crate) fn frame_id(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(u);
            }
            match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1e15 => Ok(f as u64),
                _ => Err(format!(
                    "expected a non-negative integer frame number, got {n}"
                )),
            }
        }
        Value::String(s) => {
            let s = s.trim();
            let digits: String = s
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            digits
                .parse::<u64>()
                .map_err(|_| format!("frame id {s:?} does not end in digits"))
        }
        other => Err(format!("expected a frame number, got {other}")),
    }
}

/// One video name or a list of names (`vehicle_view` is a string in caption files; VQA and
/// other files use lists).
pub(crate) fn names(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("expected a video file name, got {i}"))
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        other => Err(format!(
            "expected a video name or a list of names, got {other}"
        )),
    }
}

/// An id that is an int in WTS files and may be a string elsewhere; kept as text.
pub(crate) fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frame_ids() {
        assert_eq!(frame_id(&json!(723)).unwrap(), 723);
        assert_eq!(frame_id(&json!(723.0)).unwrap(), 723);
        assert_eq!(frame_id(&json!("video1004_000723")).unwrap(), 723);
        assert!(frame_id(&json!("abc")).is_err());
        assert!(frame_id(&json!(-1)).is_err());
    }

    #[test]
    fn times() {
        assert_eq!(seconds(&json!("39.395")).unwrap(), 39.395);
        assert_eq!(seconds(&json!(2)).unwrap(), 2.0);
        assert!(seconds(&json!("x")).is_err());
        assert!(seconds(&json!(-1.0)).is_err());
    }
}
