//! Bad inputs: each is reported in `report.json` (with the file at fault and a clear reason) and
//! skipped, the rest is converted; with `strict` the conversion fails listing them all and
//! writes nothing.

mod convert_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use convert_support::{dataset_dir, read_json, synth_copy};
use serde_json::Value;
use wts_dataset::convert::{ConvertConfig, ConvertReport, FramePick, convert};
use wts_dataset::synth::{
    SCENARIO_CAMERA_STYLE as A, SCENARIO_IP_STYLE as B, SCENARIO_NORMAL as N,
};

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// The damaged files, for the assertions.
struct Damage {
    truncated_caption: PathBuf,
    unknown_label_caption: PathBuf,
    empty_caption: PathBuf,
    truncated_video: PathBuf,
    not_h264_video: PathBuf,
    bbox_outside: PathBuf,
    late_phase_caption: PathBuf,
}

/// Damages one item per kind of bad input, each in a different video or scenario.
fn damage(wts: &Path, bdd: &Path) -> Damage {
    let cap = wts.join("annotations/caption/train");
    let vid = wts.join("videos/train");

    // Malformed (truncated) JSON: A's overhead caption.
    let truncated_caption = cap.join(format!("{A}/overhead_view/{A}_caption.json"));
    let text = std::fs::read(&truncated_caption).unwrap();
    std::fs::write(&truncated_caption, &text[..text.len() / 2]).unwrap();

    // Unknown phase label: B's vehicle-view caption.
    let unknown_label_caption = cap.join(format!("{B}/vehicle_view/{B}_caption.json"));
    edit_json(&unknown_label_caption, |v| {
        v["event_phase"][0]["labels"] = serde_json::json!(["crash"])
    });

    // Empty caption: the normal scenario.
    let empty_caption = cap.join(format!("normal_trimmed/{N}/overhead_view/{N}_caption.json"));
    edit_json(&empty_caption, |v| {
        v["event_phase"][2]["caption_pedestrian"] = "".into()
    });

    // Missing video: B's second camera (still listed in its caption file).
    std::fs::remove_file(vid.join(format!("{B}/overhead_view/{B}_192.168.0.16_3.mp4"))).unwrap();

    // Truncated video: A's vehicle view.
    let truncated_video = vid.join(format!("{A}/vehicle_view/{A}_vehicle_view.mp4"));
    let bytes = std::fs::read(&truncated_video).unwrap();
    std::fs::write(&truncated_video, &bytes[..bytes.len() * 2 / 5]).unwrap();

    // Not H.264: BDD video1004 re-encoded as MPEG-4 part 2.
    let not_h264_video = bdd.join("videos/train/video1004.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=256x144:rate=30",
            "-t",
            "6",
        ])
        .args(["-c:v", "mpeg4"])
        .arg(&not_h264_video)
        .status()
        .unwrap();
    assert!(status.success());

    // Box outside the frame: every pedestrian box of B's first camera.
    let bbox_outside = wts.join(format!(
        "annotations/bbox_generated/pedestrian/train/{B}/overhead_view/{B}_192.168.0.14_1_bbox.json"
    ));
    edit_json(&bbox_outside, |v| {
        for a in v["annotations"].as_array_mut().unwrap() {
            a["bbox"][0] = 5000.0.into();
        }
    });

    // Phase time past the video's end: BDD video1005, avoidance phase.
    let late_phase_caption = bdd.join("annotations/caption/train/video1005_caption.json");
    edit_json(&late_phase_caption, |v| {
        for p in v["event_phase"].as_array_mut().unwrap() {
            if p["labels"][0] == "avoidance" {
                p["start_time"] = "99.0".into();
                p["end_time"] = "100.0".into();
            }
        }
    });
    Damage {
        truncated_caption,
        unknown_label_caption,
        empty_caption,
        truncated_video,
        not_h264_video,
        bbox_outside,
        late_phase_caption,
    }
}

fn config(out: &Path, wts: &Path, bdd: &Path) -> ConvertConfig {
    let mut cfg = ConvertConfig::new(out, "BAD");
    cfg.wts_root = Some(wts.to_path_buf());
    cfg.bdd_root = Some(bdd.to_path_buf());
    // Start: the late BDD phase is then placed by its (bad) caption time.
    cfg.frames = FramePick::Start;
    cfg
}

/// The skipped entries whose file is `file`, checking each reason names it and says `what`.
fn expect(report: &ConvertReport, file: &Path, what: &str) -> usize {
    let hits: Vec<_> = report.skipped.iter().filter(|s| s.file == file).collect();
    assert!(
        !hits.is_empty(),
        "nothing reported for {}: {:#?}",
        file.display(),
        report.skipped
    );
    for h in &hits {
        assert!(
            h.reason.contains(&*file.to_string_lossy()),
            "reason must name the file: {h:?}"
        );
        assert!(h.reason.contains(what), "expected {what:?}: {h:?}");
    }
    hits.len()
}

#[test]
fn bad_items_are_reported_and_skipped_and_strict_fails() {
    let (_tree, s) = synth_copy();
    let d = damage(&s.wts_root, &s.bdd_root);
    let out = tempfile::tempdir().unwrap();
    let cfg = config(out.path(), &s.wts_root, &s.bdd_root);
    let report = convert(&cfg).unwrap();

    assert_eq!(
        expect(&report, &d.truncated_caption, "EOF while parsing"),
        2,
        "both overhead cameras of A"
    );
    expect(
        &report,
        &d.unknown_label_caption,
        "unknown phase label \"crash\"",
    );
    expect(&report, &d.empty_caption, "empty or missing caption");
    expect(&report, &d.truncated_video, "truncated");
    expect(&report, &d.not_h264_video, "not H.264");
    assert_eq!(
        expect(&report, &d.bbox_outside, "lies outside the"),
        5,
        "every phase of the camera"
    );
    expect(&report, &d.late_phase_caption, "outside the video");
    let missing_video = s.wts_root.join(format!(
        "annotations/caption/train/{B}/overhead_view/{B}_caption.json"
    ));
    expect(
        &report,
        &missing_video,
        "192.168.0.16_3.mp4, which is not in the overhead_view folder",
    );

    // What is left: BDD video1005 without its avoidance phase.
    assert_eq!(report.samples, 4 * 2);
    let dir = dataset_dir(out.path(), "BAD");
    let ds = read_json(&dir.join("dataset.json"));
    assert!(
        ds.as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"].as_str().unwrap().starts_with("video1005/"))
    );
    let rep = read_json(&dir.join("report.json"));
    assert_eq!(
        rep["skipped"].as_array().unwrap().len(),
        report.skipped.len()
    );
    assert!(rep["skipped"].to_string().contains("not H.264"));

    // Strict: an error listing every item, and nothing written.
    let strict_out = tempfile::tempdir().unwrap();
    let mut strict = config(strict_out.path(), &s.wts_root, &s.bdd_root);
    strict.strict = true;
    let e = convert(&strict).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "strict mode: {} item(s) would be skipped",
            report.skipped.len()
        )),
        "{e}"
    );
    for item in &report.skipped {
        assert!(e.contains(&item.reason), "{e}\nmissing {}", item.reason);
    }
    assert_eq!(
        std::fs::read_dir(strict_out.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn strict_after_a_good_run_keeps_the_previous_dataset_intact() {
    let (_tree, s) = synth_copy();
    let out = tempfile::tempdir().unwrap();
    let mut cfg = config(out.path(), &s.wts_root, &s.bdd_root);
    cfg.strict = true;
    let good = convert(&cfg).unwrap();
    let dir = dataset_dir(out.path(), "BAD");
    let before = convert_support::tree_bytes(&dir);
    damage(&s.wts_root, &s.bdd_root);
    assert!(convert(&cfg).is_err());
    assert_eq!(before, convert_support::tree_bytes(&dir), "untouched");
    assert!(good.samples > 0);
}

#[test]
fn configuration_errors() {
    let out = tempfile::tempdir().unwrap();
    let cfg = ConvertConfig::new(out.path(), "X");
    assert!(
        convert(&cfg)
            .unwrap_err()
            .to_string()
            .contains("give a WTS root")
    );
    let mut cfg = ConvertConfig::new(out.path(), "a/b");
    cfg.bdd_root = Some(out.path().to_path_buf());
    assert!(
        convert(&cfg)
            .unwrap_err()
            .to_string()
            .contains("dataset name")
    );
    let mut cfg = ConvertConfig::new(out.path(), "X");
    cfg.bdd_root = Some(out.path().join("missing"));
    let e = convert(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("missing") && e.contains("not a BDD_PC_5K root"),
        "{e}"
    );
}

#[test]
fn a_view_without_caption_file_is_skipped_naming_the_expected_file() {
    let (_tree, s) = synth_copy();
    let v = wts_dataset::synth::SCENARIO_VAL;
    let caption = s.wts_root.join(format!(
        "annotations/caption/val/{v}/vehicle_view/{v}_caption.json"
    ));
    std::fs::remove_file(&caption).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut cfg = ConvertConfig::new(out.path(), "NOCAP");
    cfg.wts_root = Some(s.wts_root.clone());
    cfg.split = wts_dataset::layout::Split::Val;
    let report = convert(&cfg).unwrap();
    expect(&report, &caption, "no vehicle_view caption file");
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(
        report.samples,
        5 * 2,
        "the overhead camera is still converted"
    );
}
