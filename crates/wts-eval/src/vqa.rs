//! VQA accuracy as `eval-metrics-AIC-Track2_VQA/traffic_qa_evaluation_script.py`
//! computes it: ground truth and submission are lists of `{"id", "correct"}`; answers
//! are compared after lower-casing; a question without an answer counts as wrong;
//! accuracy = correct / number of distinct GT ids (0 when there are none). Duplicate
//! ids keep the last entry (Python dict comprehension).
//!
//! Extension: the GT may also be a dataset-style VQA file (entries with `conversations`
//! or `event_phase[].conversations`, e.g. `WTS_VQA_PUBLIC_TEST.json` with answers):
//! every object that has both `id` and `correct` anywhere in it is a question.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::{EvalError, read_json};

/// VQA result; `accuracy` is in 0..=1 (the official script prints it as a percentage).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VqaReport {
    pub accuracy: f64,
    pub correct: usize,
    pub total: usize,
    pub wrong: usize,
    pub missing: usize,
}

/// Question ids compare like Python values: a string id never equals a number id.
fn id_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(format!("s:{s}")),
        Value::Number(n) => Some(format!("n:{n}")),
        _ => None,
    }
}

/// Collects `id -> lower-cased answer` from every object holding both keys.
fn collect(
    path: &Path,
    v: &Value,
    out: &mut HashMap<String, String>,
    order: &mut Vec<String>,
) -> Result<(), EvalError> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|i| collect(path, i, out, order)),
        Value::Object(obj) => match (obj.get("id"), obj.get("correct")) {
            (Some(id), Some(answer)) => {
                let key = id_key(id).ok_or_else(|| {
                    EvalError::schema(path, format!("question id {id} is not a string or number"))
                })?;
                let Value::String(answer) = answer else {
                    return Err(EvalError::schema(
                        path,
                        format!("question {id}: \"correct\" is not a string"),
                    ));
                };
                if out.insert(key.clone(), answer.to_lowercase()).is_none() {
                    order.push(key);
                }
                Ok(())
            }
            // A leaf question (no nested lists/objects) with an id but no answer would be
            // a KeyError in the official script; never skip it silently.
            (Some(id), None) if !obj.values().any(|x| x.is_array() || x.is_object()) => Err(
                EvalError::schema(path, format!("question {id} has no \"correct\" answer")),
            ),
            _ => obj.values().try_for_each(|x| collect(path, x, out, order)),
        },
        _ => Ok(()),
    }
}

/// Scores a VQA submission (`[{"id", "correct"}]`) against the GT answers.
pub fn score_vqa(predictions: &Path, ground_truth: &Path) -> Result<VqaReport, EvalError> {
    let gt_json = read_json(ground_truth)?;
    let pred_json = read_json(predictions)?;
    let Value::Array(pred_items) = &pred_json else {
        return Err(EvalError::schema(
            predictions,
            "expected a JSON list of {\"id\", \"correct\"} objects",
        ));
    };
    let (mut gt, mut order) = (HashMap::new(), Vec::new());
    collect(ground_truth, &gt_json, &mut gt, &mut order)?;
    if gt.is_empty() {
        return Err(EvalError::NoVqaQuestions {
            path: ground_truth.to_owned(),
        });
    }
    let mut user: HashMap<String, String> = HashMap::new();
    for (k, item) in pred_items.iter().enumerate() {
        let (Some(id), Some(answer)) = (item.get("id"), item.get("correct")) else {
            return Err(EvalError::schema(
                predictions,
                format!("entry #{k} needs both \"id\" and \"correct\""),
            ));
        };
        let key = id_key(id).ok_or_else(|| {
            EvalError::schema(
                predictions,
                format!("entry #{k}: id is not a string or number"),
            )
        })?;
        let Value::String(answer) = answer else {
            return Err(EvalError::schema(
                predictions,
                format!("entry #{k}: \"correct\" is not a string"),
            ));
        };
        user.insert(key, answer.to_lowercase());
    }
    let (mut correct, mut wrong, mut missing) = (0, 0, 0);
    for key in &order {
        match user.get(key) {
            Some(a) if Some(a) == gt.get(key) => correct += 1,
            Some(_) => wrong += 1,
            None => missing += 1,
        }
    }
    let total = order.len();
    let accuracy = if total > 0 {
        correct as f64 / total as f64
    } else {
        0.0
    };
    Ok(VqaReport {
        accuracy,
        correct,
        total,
        wrong,
        missing,
    })
}
