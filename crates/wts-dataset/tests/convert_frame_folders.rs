//! Pre-extracted frame folders (`<dir>/<video stem>/frame%d.jpg`, the official
//! `script/frame_extraction.py` naming) instead of videos: same frames as from the videos.

mod convert_support;

use std::process::Command;

use convert_support::{dataset_dir, read_json, synth};
use wts_dataset::convert::{ConvertConfig, FramePick, convert};
use wts_dataset::synth::decode_frame_index;

#[test]
fn frames_from_folders_match_the_requested_times() {
    let s = synth();
    let frames = tempfile::tempdir().unwrap();
    // Extract every WTS train video (30 fps) as frame0.jpg, frame1.jpg, ...
    let mut videos = Vec::new();
    for e in walk(&s.wts_root.join("videos/train")) {
        if e.extension().is_some_and(|x| x == "mp4") {
            videos.push(e);
        }
    }
    assert_eq!(videos.len(), 7);
    for v in &videos {
        let dir = frames.path().join(v.file_stem().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(v)
            .args(["-q:v", "2", "-start_number", "0"])
            .arg(dir.join("frame%d.jpg"))
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    let out = tempfile::tempdir().unwrap();
    let mut cfg = ConvertConfig::new(out.path(), "FOLD");
    cfg.wts_root = Some(s.wts_root.clone());
    cfg.frame_folders = Some(frames.path().to_path_buf());
    cfg.frames = FramePick::Middle;
    cfg.draw_boxes = false;
    let report = convert(&cfg).unwrap();
    assert!(report.skipped.is_empty(), "{:#?}", report.skipped);
    assert_eq!(report.samples, 7 * 5 * 2);
    let dir = dataset_dir(out.path(), "FOLD");
    let manifest = read_json(&dir.join("manifest.json"));
    for e in manifest["images"].as_array().unwrap() {
        let n = e["frame_index"].as_u64().unwrap();
        let t = e["time_s"].as_f64().unwrap();
        assert_eq!(n, (t * 30.0 + 1e-6).floor() as u64);
        let img = image::open(dir.join(e["image"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        assert_eq!(decode_frame_index(&img), Some(n), "{e}");
    }

    // A missing folder is reported for its video, not fatal.
    std::fs::remove_dir_all(frames.path().join(videos[0].file_stem().unwrap())).unwrap();
    let report = convert(&cfg).unwrap();
    assert_eq!(report.samples, 6 * 5 * 2);
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.reason.contains("frame folder not found")),
        "{:#?}",
        report.skipped
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
