//! The main-view CSV (wts.md §1.2): header row, then `scenario,video...` rows of varying length.

use std::path::{Path, PathBuf};

use wts_dataset::annotations::{parse_main_views, parse_main_views_str};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn rows_of_varying_length_blank_lines_and_spaces() {
    let m = parse_main_views(&fixture("main_view.csv")).unwrap();
    assert_eq!(m.views.len(), 2);
    assert!(!m.has_scenario("Scene"), "the header row is skipped");
    assert!(m.is_main("20230707_12_SN17_T1", "20230707_12_SN17_T1_Camera1_0.mp4"));
    assert!(!m.is_main("20230707_12_SN17_T1", "20230707_12_SN17_T1_Camera2_3.mp4"));
    assert!(m.is_main(
        "20230929_24_SY8_T1",
        "20230929_24_SY8_T1_192.168.0.16_3.mp4"
    ));
    assert_eq!(m.views["20230929_24_SY8_T1"].len(), 2);
}

#[test]
fn a_row_without_videos_is_an_error_naming_the_file() {
    let e = parse_main_views_str(Path::new("/d/views.csv"), "Scene,V1\ns1\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/d/views.csv: ") && e.contains("row 2: scenario s1 lists no video"),
        "{e}"
    );
}

#[test]
fn invalid_utf8_is_a_csv_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("views.csv");
    std::fs::write(&p, b"Scene,V1\ns1,\xff\xfe.mp4\n").unwrap();
    let e = parse_main_views(&p).unwrap_err().to_string();
    assert!(e.contains("views.csv"), "{e}");
}
