//! Caption JSON: every schema variant of wts.md §1.3 and every error a bad file can cause.

use std::path::{Path, PathBuf};

use wts_dataset::annotations::{CaptionKind, Phase, Subject, parse_caption, parse_caption_str};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn wts_overhead_phases_sorted_and_times_parsed() {
    let c = parse_caption(&fixture("caption_overhead.json"), true).unwrap();
    assert_eq!(c.kind, CaptionKind::Overhead);
    assert_eq!(c.id.as_deref(), Some("101"));
    assert_eq!(c.videos.len(), 2);
    assert_eq!(c.fps, None);
    let labels: Vec<Phase> = c.phases.iter().map(|p| p.phase).collect();
    assert_eq!(
        labels,
        [Phase::Prerecognition, Phase::Recognition, Phase::Avoidance]
    );
    let p4 = c.phase(Phase::Avoidance).unwrap();
    assert_eq!((p4.start_s, p4.end_s), (39.395, 44.663));
    assert_eq!(p4.caption(Subject::Vehicle), Some("The vehicle stops."));
}

#[test]
fn vehicle_view_with_names_variants_and_numeric_times() {
    let c = parse_caption(&fixture("caption_vehicle.json"), true).unwrap();
    assert_eq!(c.kind, CaptionKind::Vehicle);
    assert_eq!(c.id, None);
    assert_eq!(c.videos, ["20230707_12_SN17_T1_vehicle_view.mp4"]);
    let labels: Vec<Phase> = c.phases.iter().map(|p| p.phase).collect();
    // `pre-recognition` and `judgment` are accepted spellings (wts.md §1.3).
    assert_eq!(
        labels,
        [Phase::Prerecognition, Phase::Judgement, Phase::Avoidance]
    );
    assert_eq!(c.phases[0].start_s, 0.0);
    assert_eq!(c.phases[1].start_s, 3.1);
}

#[test]
fn bdd_fps_string_and_name_labels() {
    let c = parse_caption(&fixture("caption_bdd.json"), true).unwrap();
    assert_eq!(c.kind, CaptionKind::Bdd);
    assert_eq!(c.fps, Some(29.97));
    assert_eq!(c.videos, ["video1004.mp4"]);
    assert_eq!(c.phases[1].phase, Phase::Recognition);
}

#[test]
fn test_file_has_times_without_captions() {
    let path = fixture("caption_test.json");
    let c = parse_caption(&path, false).unwrap();
    assert_eq!(c.phases.len(), 2);
    assert!(
        c.phases
            .iter()
            .all(|p| p.caption_pedestrian.is_none() && p.caption_vehicle.is_none())
    );
    // The same file is rejected where captions are required (train/val).
    let e = parse_caption(&path, true).unwrap_err().to_string();
    assert!(
        e.contains("caption_test.json") && e.contains("empty or missing caption"),
        "{e}"
    );
}

#[test]
fn phase_labels_normalise() {
    for (label, phase) in [
        ("0", Phase::Prerecognition),
        ("pre-recognition", Phase::Prerecognition),
        ("PreRecognition", Phase::Prerecognition),
        ("2", Phase::Judgement),
        ("judgment", Phase::Judgement),
        ("judgement", Phase::Judgement),
        (" action ", Phase::Action),
        ("4", Phase::Avoidance),
    ] {
        assert_eq!(Phase::parse(label), Some(phase), "{label}");
    }
    assert_eq!(Phase::parse("5"), None);
    assert_eq!(Phase::parse("crash"), None);
    assert_eq!(Phase::Judgement.digit(), 2);
    assert_eq!(Phase::Judgement.name(), "judgement");
}

fn err(text: &str, require: bool) -> String {
    parse_caption_str(Path::new("/data/x/s1_caption.json"), text, require)
        .unwrap_err()
        .to_string()
}

#[test]
fn errors_name_the_file_and_the_problem() {
    let ok_phase = r#"{"labels": ["0"], "caption_pedestrian": "p", "caption_vehicle": "v", "start_time": "1", "end_time": "2"}"#;
    let cases: Vec<(String, &str)> = vec![
        // malformed
        ("{\"id\": 1, \"event_phase\": [,]}".into(), "malformed JSON"),
        // truncated
        (format!("{{\"id\": 1, \"event_phase\": [{ok_phase}"), "EOF"),
        // missing field
        ("{\"id\": 1}".into(), "missing field `event_phase`"),
        (r#"{"event_phase": [{"labels": ["0"], "caption_pedestrian": "p", "caption_vehicle": "v", "end_time": "2"}]}"#.into(), "missing field `start_time`"),
        // unknown label
        (r#"{"event_phase": [{"labels": ["collision"], "caption_pedestrian": "p", "caption_vehicle": "v", "start_time": "1", "end_time": "2"}]}"#.into(), "unknown phase label \"collision\""),
        // empty caption
        (r#"{"event_phase": [{"labels": ["0"], "caption_pedestrian": "  ", "caption_vehicle": "v", "start_time": "1", "end_time": "2"}]}"#.into(), "caption_pedestrian: empty or missing caption"),
        // bad time
        (r#"{"event_phase": [{"labels": ["0"], "caption_pedestrian": "p", "caption_vehicle": "v", "start_time": "abc", "end_time": "2"}]}"#.into(), "start_time: expected a number"),
        (r#"{"event_phase": [{"labels": ["0"], "caption_pedestrian": "p", "caption_vehicle": "v", "start_time": "3", "end_time": "2"}]}"#.into(), "before start_time"),
        // bad fps
        (format!("{{\"video_name\": \"video1.mp4\", \"fps\": \"fast\", \"event_phase\": [{ok_phase}]}}"), "fps: expected a number"),
        // empty list / duplicate phase
        ("{\"event_phase\": []}".into(), "event_phase is empty"),
        (format!("{{\"event_phase\": [{ok_phase}, {ok_phase}]}}"), "listed twice"),
    ];
    for (text, expected) in cases {
        let e = err(&text, true);
        assert!(e.starts_with("/data/x/s1_caption.json: "), "{e}");
        assert!(e.contains(expected), "expected {expected:?} in {e:?}");
    }
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let e = parse_caption(Path::new("/nonexistent/a_caption.json"), true).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/a_caption.json"), "{e}");
}
