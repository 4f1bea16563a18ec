//! VQA accuracy against the value `fixtures/make_reference.py` computed with the
//! official `traffic_qa_evaluation_script.evaluate` logic.

mod common;

use common::{fixtures, read_json};
use wts_eval::score_vqa;

#[test]
fn vqa_matches_official_script() {
    let base = fixtures().join("vqa");
    let expected = read_json(&base.join("expected.json"));
    let report = score_vqa(
        &base.join("submission.json"),
        &base.join("ground_truth.json"),
    )
    .expect("score");
    assert_eq!(serde_json::to_value(&report).expect("json"), expected);
    assert_eq!(
        (report.correct, report.total, report.wrong, report.missing),
        (5, 10, 2, 3)
    );
}

#[test]
fn vqa_accepts_dataset_style_ground_truth() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let gt = tmp.path().join("gt.json");
    std::fs::write(
        &gt,
        r#"[{"videos": ["a.mp4"], "event_phase": [{"labels": ["avoidance"], "conversations": [
              {"id": "q1", "question": "?", "a": "x", "b": "y", "correct": "b"},
              {"id": "q2", "question": "?", "a": "x", "b": "y", "correct": "a"}]}]},
            {"videos": ["a.mp4"], "conversations": [{"id": "q3", "question": "?", "a": "x", "correct": "A"}]}]"#,
    )
    .expect("write");
    let sub = tmp.path().join("sub.json");
    std::fs::write(&sub, r#"[{"id": "q1", "correct": "B"}, {"id": "q3", "correct": "a"}, {"id": "q2", "correct": "b"}]"#).expect("write");
    let r = score_vqa(&sub, &gt).expect("score");
    assert_eq!((r.correct, r.wrong, r.missing, r.total), (2, 1, 0, 3));
    assert!((r.accuracy - 2.0 / 3.0).abs() < 1e-12);
}
