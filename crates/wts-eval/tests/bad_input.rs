//! Bad inputs give typed errors whose messages name the offending file.

mod common;

use std::path::{Path, PathBuf};

use common::{fixtures, wordnet};
use wts_eval::{EvalError, WordNet, score_captions, score_vqa};

fn gt() -> PathBuf {
    fixtures().join("aggregate").join("gt")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn valid_submission() -> String {
    std::fs::read_to_string(fixtures().join("aggregate").join("submission.json")).expect("read")
}

#[track_caller]
fn assert_names_file(err: &EvalError, file: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&file.display().to_string()),
        "message {msg:?} does not name {}",
        file.display()
    );
}

#[test]
fn malformed_json() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = write(
        tmp.path(),
        "sub.json",
        r#"{"20230707_8_SN46_T1": [{"labels": ["0"], }]}"#,
    );
    let err = score_captions(&p, &gt(), wordnet()).expect_err("must fail");
    assert!(matches!(err, EvalError::Json { .. }), "{err:?}");
    assert_names_file(&err, &p);
}

#[test]
fn truncated_json() {
    let tmp = tempfile::tempdir().expect("tmp");
    let full = valid_submission();
    let p = write(tmp.path(), "sub.json", &full[..full.len() / 2]);
    let err = score_captions(&p, &gt(), wordnet()).expect_err("must fail");
    assert!(matches!(err, EvalError::Json { .. }), "{err:?}");
    assert!(err.to_string().contains("truncated"));
    assert_names_file(&err, &p);
}

#[test]
fn missing_prediction_file() {
    let p = PathBuf::from("/nonexistent/wts-eval/sub.json");
    let err = score_captions(&p, &gt(), wordnet()).expect_err("must fail");
    assert!(matches!(err, EvalError::Io { .. }), "{err:?}");
    assert_names_file(&err, &p);
}

#[test]
fn missing_ground_truth_dir() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = write(tmp.path(), "sub.json", &valid_submission());
    let missing = tmp.path().join("no-such-gt");
    let err = score_captions(&p, &missing, wordnet()).expect_err("must fail");
    assert!(
        matches!(err, EvalError::MissingGroundTruth { .. }),
        "{err:?}"
    );
    assert_names_file(&err, &missing);
    // A root without the external BDD folder is an error too, as in metrics_all.py.
    std::fs::create_dir_all(tmp.path().join("gt2/annotations")).expect("mkdir");
    let err = score_captions(&p, &tmp.path().join("gt2"), wordnet()).expect_err("must fail");
    assert!(err.to_string().contains("BDD_PC_5K"), "{err}");
}

#[test]
fn submission_missing_caption_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = write(
        tmp.path(),
        "sub.json",
        r#"{"20230707_8_SN46_T1": [{"labels": ["0"], "caption_vehicle": "The vehicle stops."}]}"#,
    );
    let err = score_captions(&p, &gt(), wordnet()).expect_err("must fail");
    assert!(matches!(err, EvalError::Schema { .. }), "{err:?}");
    assert!(err.to_string().contains("caption_pedestrian"), "{err}");
    assert_names_file(&err, &p);
}

#[test]
fn empty_caption_in_submission() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = write(
        tmp.path(),
        "sub.json",
        r#"{"video1004": [{"labels": ["2"], "caption_pedestrian": "  ", "caption_vehicle": "The vehicle stops."}]}"#,
    );
    let err = score_captions(&p, &gt(), wordnet()).expect_err("must fail");
    assert!(
        matches!(
            err,
            EvalError::EmptyCaption {
                field: "caption_pedestrian",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("video1004"), "{err}");
    assert_names_file(&err, &p);
}

#[test]
fn empty_caption_in_ground_truth() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sub = write(tmp.path(), "sub.json", &valid_submission());
    let ann = tmp.path().join("gt/annotations");
    std::fs::create_dir_all(&ann).expect("mkdir");
    std::fs::create_dir_all(tmp.path().join("gt/external/BDD_PC_5K/annotations")).expect("mkdir");
    let bad = write(
        &ann,
        "20230707_8_SN46_T1_caption.json",
        r#"{"event_phase": [{"labels": ["0"], "caption_pedestrian": "A man.", "caption_vehicle": ""}]}"#,
    );
    let err = score_captions(&sub, &tmp.path().join("gt"), wordnet()).expect_err("must fail");
    assert!(
        matches!(
            err,
            EvalError::EmptyCaption {
                field: "caption_vehicle",
                ..
            }
        ),
        "{err:?}"
    );
    assert_names_file(&err, &bad);
}

#[test]
fn unknown_phase_label() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = write(
        tmp.path(),
        "sub.json",
        r#"{"video1004": [{"labels": ["7"], "caption_pedestrian": "A man.", "caption_vehicle": "A car."}]}"#,
    );
    let err = score_captions(&p, &gt(), wordnet()).expect_err("must fail");
    assert!(
        matches!(err, EvalError::UnknownPhaseLabel { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"7\""), "{err}");
    assert_names_file(&err, &p);
}

#[test]
fn submission_not_an_object() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = write(tmp.path(), "sub.json", "[1, 2]");
    let err = score_captions(&p, &gt(), wordnet()).expect_err("must fail");
    assert!(matches!(err, EvalError::Schema { .. }), "{err:?}");
    assert_names_file(&err, &p);
}

#[test]
fn ground_truth_without_segments() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sub = write(tmp.path(), "sub.json", &valid_submission());
    std::fs::create_dir_all(tmp.path().join("gt/annotations")).expect("mkdir");
    std::fs::create_dir_all(tmp.path().join("gt/external/BDD_PC_5K/annotations")).expect("mkdir");
    let err = score_captions(&sub, &tmp.path().join("gt"), wordnet()).expect_err("must fail");
    assert!(
        matches!(err, EvalError::NoGroundTruthSegments { .. }),
        "{err:?}"
    );
}

#[test]
fn wordnet_missing_dir_says_install_wordnet_base() {
    let err = WordNet::open(Path::new("/nonexistent/wordnet")).expect_err("must fail");
    assert!(matches!(err, EvalError::WordNetMissing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("wordnet-base") && msg.contains("/nonexistent/wordnet"),
        "{msg}"
    );
}

#[test]
fn vqa_bad_inputs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let gt = fixtures().join("vqa").join("ground_truth.json");
    let trunc = write(tmp.path(), "trunc.json", r#"[{"id": "a", "corr"#);
    let err = score_vqa(&trunc, &gt).expect_err("must fail");
    assert!(matches!(err, EvalError::Json { .. }), "{err:?}");
    assert_names_file(&err, &trunc);
    let no_answer = write(tmp.path(), "noanswer.json", r#"[{"id": "a"}]"#);
    let err = score_vqa(&no_answer, &gt).expect_err("must fail");
    assert!(matches!(err, EvalError::Schema { .. }), "{err:?}");
    assert_names_file(&err, &no_answer);
    // A GT question without its answer is an error, not a silently smaller total.
    let unanswered = write(
        tmp.path(),
        "unanswered.json",
        r#"[{"id": "a", "correct": "b"}, {"id": "c"}]"#,
    );
    let err = score_vqa(&no_answer, &unanswered).expect_err("must fail");
    assert!(matches!(err, EvalError::Schema { .. }), "{err:?}");
    assert_names_file(&err, &unanswered);
    let empty_gt = write(tmp.path(), "gt.json", "[]");
    let err = score_vqa(&no_answer, &empty_gt).expect_err("must fail");
    assert!(matches!(err, EvalError::NoVqaQuestions { .. }), "{err:?}");
}
