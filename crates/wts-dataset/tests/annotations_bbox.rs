//! BBox JSON (wts.md §1.4): WTS (float boxes, string phase) and BDD (int boxes, int phase,
//! string image ids), and the errors.

use std::path::{Path, PathBuf};

use wts_dataset::annotations::{Phase, parse_bbox, parse_bbox_str};
use wts_dataset::geometry::BBox;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn wts_entries_sorted_with_phase_lookup() {
    let f = parse_bbox(&fixture("bbox_wts.json")).unwrap();
    let frames: Vec<u64> = f.entries.iter().map(|e| e.frame).collect();
    assert_eq!(frames, [723, 724, 753]);
    let first = f.first_of_phase(Phase::Prerecognition).unwrap();
    assert_eq!(first.frame, 723);
    assert!(!first.auto_generated);
    assert_eq!(first.bbox, BBox::from_xywh([794.9, 147.44, 27.62, 34.36]));
    assert!(f.at_frame(724).unwrap().auto_generated);
    assert!(f.at_frame(725).is_none());
    assert_eq!(f.first_of_phase(Phase::Recognition).unwrap().frame, 753);
    assert!(f.first_of_phase(Phase::Action).is_none());
}

#[test]
fn bdd_int_boxes_int_phase_and_string_ids() {
    let f = parse_bbox(&fixture("bbox_bdd.json")).unwrap();
    assert_eq!(f.entries[0].frame, 65);
    assert_eq!(f.entries[0].phase, Some(Phase::Prerecognition));
    assert_eq!(f.entries[1].phase, Some(Phase::Recognition));
    assert_eq!(
        f.entries[1].bbox,
        BBox::from_xywh([110.0, 52.0, 18.0, 40.0])
    );
}

#[test]
fn errors_name_the_file_and_the_problem() {
    let cases = [
        ("{\"annotations\": [", "EOF"),
        ("{\"annotations\": 5}", "malformed JSON"),
        ("{}", "missing field `annotations`"),
        (
            r#"{"annotations": [{"image_id": "x", "bbox": [1,2,3,4]}]}"#,
            "image_id: frame id \"x\" does not end in digits",
        ),
        (
            r#"{"annotations": [{"image_id": 1, "bbox": [1,2,3]}]}"#,
            "expected [x, y, width, height], got 3",
        ),
        (
            r#"{"annotations": [{"image_id": 1, "bbox": [1,2,-3,4]}]}"#,
            "negative width",
        ),
        (
            r#"{"annotations": [{"image_id": 1, "bbox": [1,2,3,4], "phase_number": "9"}]}"#,
            "unknown phase label \"9\"",
        ),
        (
            r#"{"annotations": [{"image_id": 1, "bbox": [1,2,3,4], "auto-generated": 3}]}"#,
            "auto-generated: expected a bool",
        ),
    ];
    for (text, expected) in cases {
        let e = parse_bbox_str(Path::new("/d/v_bbox.json"), text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/d/v_bbox.json: "), "{e}");
        assert!(e.contains(expected), "expected {expected:?} in {e:?}");
    }
}
