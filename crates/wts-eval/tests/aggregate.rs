//! Whole-submission scoring against the official aggregate computed by
//! `fixtures/make_reference.py` (re-implemented `metrics_all.py`, cross-checked against
//! the official script). The fixture GT has a `vehicle_view` file with different
//! captions (must be ignored), a normal_trimmed scenario, a scenario missing from the
//! submission, a missing segment, BDD captions both nested and directly in the folder.

mod common;

use std::path::Path;

use common::{assert_close, fixtures, read_json, wordnet};
use serde_json::Value;
use wts_eval::{CaptionReport, GroundTruthDirs, score_captions, score_captions_with_dirs};

fn compare(report: &CaptionReport, expected: &Value) {
    let got = serde_json::to_value(report).expect("serialize");
    compare_values(&got, expected, "report");
}

fn compare_values(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let gk: Vec<&String> = g.keys().collect();
            let wk: Vec<&String> = w.keys().collect();
            assert_eq!(gk, wk, "keys of {path}");
            for (k, wv) in w {
                compare_values(&g[k], wv, &format!("{path}.{k}"));
            }
        }
        (Value::Number(g), Value::Number(w)) => {
            assert_close(g.as_f64().expect("f64"), w.as_f64().expect("f64"), path);
        }
        _ => panic!("{path}: got {got}, expected {want}"),
    }
}

#[test]
fn aggregate_matches_official_script() {
    let base = fixtures().join("aggregate");
    let expected = read_json(&base.join("expected.json"));
    let report =
        score_captions(&base.join("submission.json"), &base.join("gt"), wordnet()).expect("score");
    compare(&report, &expected["submission.json"]);
    // Serialized shape: exactly wts / bdd / score, in that order.
    let json = serde_json::to_string(&report).expect("json");
    assert!(
        json.starts_with(r#"{"wts":{"pedestrian":{"bleu4":"#),
        "{json}"
    );
    let d = &report.wts.diagnostics;
    assert_eq!(d.segments, 5 + 3 + 2 + 4);
    assert_eq!(d.scored_segments, 5 + 2 + 2);
    assert_eq!(d.missing_scenarios, ["20230922_3_CN5_T1"]);
    assert_eq!(d.missing_segments, [("20230728_16_SY19_T1".to_owned(), 1)]);
    assert_eq!(report.bdd.diagnostics.segments, 7);
    assert!(report.bdd.diagnostics.missing_scenarios.is_empty());
    assert!(
        report.score > 20.0 && report.score < 100.0,
        "{}",
        report.score
    );
}

#[test]
fn submission_without_external_keys_scores_bdd_zero() {
    let base = fixtures().join("aggregate");
    let expected = read_json(&base.join("expected.json"));
    let report = score_captions(
        &base.join("submission_internal_only.json"),
        &base.join("gt"),
        wordnet(),
    )
    .expect("score");
    compare(&report, &expected["submission_internal_only.json"]);
    assert_eq!(report.bdd.score, 0.0);
    assert_close(
        report.score,
        report.wts.score / 2.0,
        "overall = internal / 2",
    );
}

#[test]
fn explicit_dirs_equal_official_layout() {
    let base = fixtures().join("aggregate");
    let dirs = GroundTruthDirs::official_layout(&base.join("gt"));
    let a =
        score_captions_with_dirs(&base.join("submission.json"), &dirs, wordnet()).expect("score");
    let b =
        score_captions(&base.join("submission.json"), &base.join("gt"), wordnet()).expect("score");
    assert_eq!(a, b);
}

/// Copies a directory tree, rewriting each JSON file with `edit`.
fn copy_tree(src: &Path, dst: &Path, edit: &dyn Fn(&mut Value)) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("entry");
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        if from.is_dir() {
            copy_tree(&from, &to, edit);
        } else {
            let mut v = read_json(&from);
            edit(&mut v);
            std::fs::write(&to, serde_json::to_string(&v).expect("json")).expect("write");
        }
    }
}

#[test]
fn phase_names_in_ground_truth_match_digit_predictions() {
    const NAMES: [&str; 5] = [
        "prerecognition",
        "recognition",
        "judgement",
        "action",
        "avoidance",
    ];
    let base = fixtures().join("aggregate");
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_tree(&base.join("gt"), tmp.path(), &|v| {
        if let Some(Value::Array(phases)) = v.get_mut("event_phase") {
            for p in phases {
                let digit = p["labels"][0]
                    .as_str()
                    .and_then(|s| s.parse::<usize>().ok())
                    .expect("digit label");
                p["labels"] = Value::from(vec![NAMES[digit]]);
            }
        }
    });
    let named =
        score_captions(&base.join("submission.json"), tmp.path(), wordnet()).expect("score");
    let digits =
        score_captions(&base.join("submission.json"), &base.join("gt"), wordnet()).expect("score");
    assert_eq!(named, digits);
}

#[test]
fn vehicle_view_captions_are_ignored() {
    // Remove the vehicle_view file: the result must not change.
    let base = fixtures().join("aggregate");
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_tree(&base.join("gt"), tmp.path(), &|_| {});
    let vv = tmp
        .path()
        .join("annotations/caption/val/20230707_8_SN46_T1/vehicle_view");
    std::fs::remove_dir_all(&vv).expect("rm vehicle_view");
    let without =
        score_captions(&base.join("submission.json"), tmp.path(), wordnet()).expect("score");
    let with =
        score_captions(&base.join("submission.json"), &base.join("gt"), wordnet()).expect("score");
    assert_eq!(without, with);
}
