//! VQA JSON (wts.md §1.5): environment and phase files (variable option letters), BDD `videos`,
//! the public test file (question ids, no answers), and the errors.

use std::path::{Path, PathBuf};

use wts_dataset::annotations::{Phase, parse_vqa, parse_vqa_str};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn environment_file_options_sorted_and_answers_lowercased() {
    let f = parse_vqa(&fixture("vqa_environment.json")).unwrap();
    assert_eq!(f.entries.len(), 1);
    let e = &f.entries[0];
    assert_eq!(e.id.as_deref(), Some("722"));
    assert_eq!(e.videos, ["20230707_8_SN46_T1_Camera1_0.mp4"]);
    assert_eq!(e.environment.len(), 2);
    assert!(e.phases.is_empty());
    let q = &e.environment[0];
    assert_eq!(
        q.options.iter().map(|(l, _)| *l).collect::<String>(),
        "abcd"
    );
    assert_eq!(q.correct, Some('b'));
    assert_eq!(q.option('b'), Some("Dry"));
    // Keys given out of order and an upper-case answer.
    let q = &e.environment[1];
    assert_eq!(
        q.options,
        [('a', "Yes".to_string()), ('b', "No".to_string())]
    );
    assert_eq!(q.correct, Some('a'));
}

#[test]
fn phase_file_with_five_options_and_name_labels() {
    let f = parse_vqa(&fixture("vqa_phase.json")).unwrap();
    let e = &f.entries[0];
    let phases: Vec<Phase> = e.phases.iter().map(|p| p.phase).collect();
    assert_eq!(phases, [Phase::Judgement, Phase::Action]);
    assert_eq!(e.phases[1].questions[0].options.len(), 5);
    assert_eq!(e.phases[1].start_s, Some(36.162));
}

#[test]
fn bdd_videos_key() {
    let f = parse_vqa(&fixture("vqa_bdd.json")).unwrap();
    assert_eq!(f.entries[0].videos, ["video1004.mp4"]);
    assert_eq!(f.entries[0].phases[0].questions[0].correct, Some('b'));
}

#[test]
fn test_file_question_ids_without_answers() {
    let f = parse_vqa(&fixture("vqa_test.json")).unwrap();
    assert_eq!(f.entries.len(), 2);
    let q = &f.entries[0].phases[0].questions[0];
    assert_eq!(
        q.id.as_deref(),
        Some("3c8c80e3-33f1-4133-a86c-1192c8a26159")
    );
    assert_eq!(q.correct, None);
    // Top-level `conversations` are scenario-level questions.
    assert_eq!(f.entries[1].environment.len(), 1);
}

#[test]
fn a_single_object_is_accepted() {
    let f = parse_vqa_str(
        Path::new("x.json"),
        r#"{"videos": ["v.mp4"], "environment": [{"question": "q?", "a": "1", "b": "2", "correct": "a"}]}"#,
    )
    .unwrap();
    assert_eq!(f.entries.len(), 1);
}

#[test]
fn errors_name_the_file_and_the_problem() {
    let cases = [
        ("[{\"id\": 1,", "EOF"),
        ("5", "expected a JSON list"),
        (r#"[{"id": 1}]"#, "no questions"),
        (
            r#"[{"environment": [{"a": "x", "b": "y", "correct": "a"}]}]"#,
            "[0].environment[0]: missing or empty `question`",
        ),
        (
            r#"[{"environment": [{"question": "q", "a": "x", "correct": "a"}]}]"#,
            "at least two options",
        ),
        (
            r#"[{"environment": [{"question": "q", "a": "x", "b": "y", "correct": "z"}]}]"#,
            "\"z\" is not one of the option letters",
        ),
        (
            r#"[{"event_phase": [{"labels": ["crash"], "conversations": []}]}]"#,
            "unknown phase label \"crash\"",
        ),
        (
            r#"[{"event_phase": [{"labels": ["0"]}]}]"#,
            "missing field `conversations`",
        ),
    ];
    for (text, expected) in cases {
        let e = parse_vqa_str(Path::new("/d/s.json"), text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/d/s.json: "), "{e}");
        assert!(e.contains(expected), "expected {expected:?} in {e:?}");
    }
}
