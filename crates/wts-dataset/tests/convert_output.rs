//! End-to-end conversion of the synthetic tree: the VILA format, prompts and answers, frames
//! taken at the right time, boxes drawn, crops, multi-image, VQA and the test split.

mod convert_support;

use std::path::Path;

use convert_support::{dataset_dir, read_json, synth};
use serde_json::Value;
use wts_dataset::convert::{ConvertConfig, FramePick, ViewFilter, convert};
use wts_dataset::layout::Split;
use wts_dataset::synth::{SCENARIO_CAMERA_STYLE, SCENARIO_TEST, decode_frame_index};
use wts_dataset::video::{frame_index_at, probe};

fn config(out: &Path, name: &str) -> ConvertConfig {
    let s = synth();
    let mut cfg = ConvertConfig::new(out, name);
    cfg.wts_root = Some(s.wts_root.clone());
    cfg.bdd_root = Some(s.bdd_root.clone());
    cfg
}

fn load_image(dir: &Path, rel: &str) -> image::RgbImage {
    image::open(dir.join(rel)).unwrap().to_rgb8()
}

/// The video a manifest entry came from.
fn video_of(entry: &Value) -> std::path::PathBuf {
    let s = synth();
    let root = if entry["source"] == "wts" {
        &s.wts_root
    } else {
        &s.bdd_root
    };
    root.join(entry["video"].as_str().unwrap())
}

#[test]
fn single_image_caption_dataset_in_vila_format() {
    let out = tempfile::tempdir().unwrap();
    let cfg = config(out.path(), "CAP");
    let report = convert(&cfg).unwrap();
    let dir = dataset_dir(out.path(), "CAP");
    assert_eq!(report.dataset_json, dir.join("dataset.json"));
    assert!(report.skipped.is_empty(), "{:#?}", report.skipped);

    let ds = read_json(&dir.join("dataset.json"));
    let records = ds.as_array().unwrap();
    assert_eq!(records.len(), report.samples);
    // Train: 3 scenarios; A: 2 cameras + vehicle, B: 2 cameras + vehicle, normal: 1 camera.
    // 7 videos x 5 phases x 2 subjects; BDD: 2 videos x 5 x 2.
    assert_eq!(records.len(), 7 * 5 * 2 + 2 * 5 * 2);
    let first = &records[0];
    assert_eq!(
        first["id"],
        format!("{SCENARIO_CAMERA_STYLE}/{SCENARIO_CAMERA_STYLE}_Camera1_0/0/pedestrian/0")
    );
    assert_eq!(first["image"], "images/0.jpg");
    let conv = first["conversations"].as_array().unwrap();
    assert_eq!(conv[0]["from"], "human");
    assert_eq!(
        conv[0]["value"],
        "<image>\nThis image is from the prerecognition phase of a traffic scene. Describe the pedestrian."
    );
    assert_eq!(conv[1]["from"], "gpt");
    assert!(
        conv[1]["value"]
            .as_str()
            .unwrap()
            .starts_with("The pedestrian")
    );
    // The vehicle sample of the same frame shares the image.
    assert_eq!(records[1]["image"], "images/0.jpg");
    assert!(
        records[1]["conversations"][0]["value"]
            .as_str()
            .unwrap()
            .ends_with("Describe the vehicle.")
    );
    // Every image referenced exists; names are images/N.jpg.
    for r in records {
        let img = r["image"].as_str().unwrap();
        assert!(dir.join(img).is_file(), "{img}");
    }

    let info = read_json(&dir.join("dataset_info.json"));
    assert_eq!(info["image_aspect_ratio"], "dynamic");
    let manifest = read_json(&dir.join("manifest.json"));
    assert_eq!(
        manifest["images"].as_array().unwrap().len(),
        report.images_written
    );
    let rep = read_json(&dir.join("report.json"));
    assert_eq!(rep["skipped"].as_array().unwrap().len(), 0);
    // Camera2 of scenario A has no bbox file: listed as missing, its frames have no box.
    assert!(
        rep["missing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["item"].as_str().unwrap().contains("Camera2_3"))
    );
}

#[test]
fn frames_show_the_frame_at_the_manifest_time() {
    let out = tempfile::tempdir().unwrap();
    let mut cfg = config(out.path(), "TIME");
    cfg.frames = FramePick::Evenly(2);
    cfg.draw_boxes = false;
    convert(&cfg).unwrap();
    let dir = dataset_dir(out.path(), "TIME");
    let manifest = read_json(&dir.join("manifest.json"));
    let images = manifest["images"].as_array().unwrap();
    assert!(images.len() > 50);
    let mut checked_5994 = false;
    for e in images {
        let info = probe(&video_of(e)).unwrap();
        let t = e["time_s"].as_f64().unwrap();
        let n = e["frame_index"].as_u64().unwrap();
        assert_eq!(frame_index_at(&info, t), n, "{e}");
        let img = load_image(&dir, e["image"].as_str().unwrap());
        assert_eq!(decode_frame_index(&img), Some(n), "{}", e["image"]);
        checked_5994 |= info.fps > 59.0;
    }
    assert!(checked_5994, "the 59.94 fps BDD video is covered");
}

#[test]
fn bbox_annotated_frames_and_drawn_boxes() {
    let out = tempfile::tempdir().unwrap();
    let cfg = config(out.path(), "BOX"); // default: the bbox_annotated frame, boxes drawn
    convert(&cfg).unwrap();
    let dir = dataset_dir(out.path(), "BOX");
    let manifest = read_json(&dir.join("manifest.json"));
    let mut drawn = 0;
    for e in manifest["images"].as_array().unwrap() {
        let n = e["frame_index"].as_u64().unwrap();
        let img = load_image(&dir, e["image"].as_str().unwrap());
        assert_eq!(decode_frame_index(&img), Some(n));
        for b in e["boxes"].as_array().unwrap() {
            // Frame = annotated first frame; annotation frames are at the file's frame rate.
            assert_eq!(b["annotation_frame"].as_u64().unwrap(), n, "{e}");
            let bb: Vec<f64> = b["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            // Middle of the left edge: the box line is centred on the edge (thickness 4).
            let (x, y) = (bb[0].floor() as u32, (bb[1] + bb[3] / 2.0) as u32);
            if x < 2 || x + 2 >= img.width() {
                continue;
            }
            let p = img.get_pixel(x, y).0;
            match b["subject"].as_str().unwrap() {
                "pedestrian" => assert!(
                    p[1] > 200 && p[0] < 90 && p[2] < 90,
                    "green at {x},{y}: {p:?}"
                ),
                _ => assert!(
                    p[2] > 200 && p[0] < 90 && p[1] < 90,
                    "blue at {x},{y}: {p:?}"
                ),
            }
            drawn += 1;
        }
    }
    assert!(drawn > 40, "{drawn}");
    // Camera2 of A has no bbox file: its frames fall back to start_time, noted.
    let cam2 = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["video"].as_str().unwrap().contains("Camera2_3"))
        .unwrap();
    assert!(cam2["boxes"].as_array().unwrap().is_empty());
    assert!(cam2["notes"].to_string().contains("start_time"), "{cam2}");
}

#[test]
fn crop_and_multi_image() {
    let out = tempfile::tempdir().unwrap();
    let mut cfg = config(out.path(), "MULTI");
    cfg.multi_image = true;
    cfg.views = ViewFilter::Overhead;
    cfg.bdd_root = None;
    let report = convert(&cfg).unwrap();
    let dir = dataset_dir(out.path(), "MULTI");
    assert_eq!(
        read_json(&dir.join("dataset_info.json"))["image_aspect_ratio"],
        "resize"
    );
    let manifest = read_json(&dir.join("manifest.json"));
    let entries = manifest["images"].as_array().unwrap();
    let by_image = |rel: &str| entries.iter().find(|e| e["image"] == rel).unwrap();
    let mut crops = 0;
    for e in entries.iter().filter(|e| e["kind"] == "crop") {
        let r: Vec<u32> = e["crop_region"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let img = load_image(&dir, e["image"].as_str().unwrap());
        assert_eq!((img.width(), img.height()), (r[2], r[3]), "{e}");
        // The crop contains every box (clipped boxes lie inside the frame).
        for b in e["boxes"].as_array().unwrap() {
            let bb: Vec<f64> = b["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert!(
                bb[0] >= f64::from(r[0]) - 1.0 && bb[0] + bb[2] <= f64::from(r[0] + r[2]) + 1.0,
                "{e}"
            );
            assert!(
                bb[1] >= f64::from(r[1]) - 1.0 && bb[1] + bb[3] <= f64::from(r[1] + r[3]) + 1.0,
                "{e}"
            );
        }
        crops += 1;
    }
    assert!(crops > 10);
    let ds = read_json(&dir.join("dataset.json"));
    let mut multi = 0;
    for r in ds.as_array().unwrap() {
        let human = r["conversations"][0]["value"].as_str().unwrap();
        match &r["image"] {
            Value::Array(list) => {
                assert_eq!(list.len(), 2);
                assert!(
                    human.starts_with("<image>\n<image>\nThe first image is from the "),
                    "{human}"
                );
                assert_eq!(by_image(list[0].as_str().unwrap())["kind"], "full");
                assert_eq!(by_image(list[1].as_str().unwrap())["kind"], "crop");
                multi += 1;
            }
            // Frames without a box (Camera2 of A) keep the single-image prompt.
            Value::String(s) => {
                assert_eq!(by_image(s)["kind"], "full");
                assert!(
                    human.starts_with("<image>\nThis image is from the "),
                    "{human}"
                );
            }
            other => panic!("{other}"),
        }
    }
    assert!(multi > 0 && multi < report.samples);
}

#[test]
fn vqa_samples_multiple_choice() {
    let out = tempfile::tempdir().unwrap();
    let mut cfg = config(out.path(), "VQA");
    cfg.include_vqa = true;
    let report = convert(&cfg).unwrap();
    assert!(report.skipped.is_empty(), "{:#?}", report.skipped);
    let dir = dataset_dir(out.path(), "VQA");
    let ds = read_json(&dir.join("dataset.json"));
    let vqa: Vec<&Value> = ds
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"].as_str().unwrap().contains("/vqa/"))
        .collect();
    assert!(!vqa.is_empty());
    let mut env = 0;
    for r in &vqa {
        let human = r["conversations"][0]["value"].as_str().unwrap();
        let answer = r["conversations"][1]["value"].as_str().unwrap();
        assert!(human.starts_with("<image>\n"), "{human}");
        assert!(
            human.contains("\na. ") && human.contains("\nb. "),
            "{human}"
        );
        assert!(human.ends_with("Answer with the option's letter and its corresponding text."));
        // The answer is `<letter>. <text>` and that line is among the options.
        let letter = answer.chars().next().unwrap();
        assert!(
            letter.is_ascii_lowercase() && answer[1..].starts_with(". "),
            "{answer}"
        );
        assert!(human.contains(&format!("\n{answer}")), "{human} / {answer}");
        env += usize::from(r["id"].as_str().unwrap().contains("/vqa/env/"));
    }
    assert!(env > 0);
    // BDD VQA (`videos` key) is included.
    assert!(
        vqa.iter()
            .any(|r| r["id"].as_str().unwrap().starts_with("video1004/"))
    );
}

#[test]
fn test_split_has_no_answers_and_submission_ids() {
    let s = synth();
    let out = tempfile::tempdir().unwrap();
    let mut cfg = ConvertConfig::new(out.path(), "TEST");
    cfg.wts_root = Some(
        s.wts_root
            .parent()
            .unwrap()
            .join("test_part/WTS_DATASET_PUBLIC_TEST"),
    );
    cfg.split = Split::Test;
    cfg.main_view_csv = Some(s.main_view_csv.clone());
    let report = convert(&cfg).unwrap();
    assert!(report.skipped.is_empty(), "{:#?}", report.skipped);
    let ds = read_json(&dataset_dir(out.path(), "TEST").join("dataset.json"));
    let records = ds.as_array().unwrap();
    assert_eq!(records.len(), 5 * 2);
    for r in records {
        let conv = r["conversations"].as_array().unwrap();
        assert_eq!(conv.len(), 1);
        assert_eq!(conv[0]["from"], "human");
        // <scenario>/<video stem>/<phase digit>/<subject>/<k>
        let id = r["id"].as_str().unwrap();
        let parts: Vec<&str> = id.split('/').collect();
        assert_eq!(parts[0], SCENARIO_TEST);
        assert!(matches!(parts[2], "0" | "1" | "2" | "3" | "4"));
        assert!(matches!(parts[3], "pedestrian" | "vehicle"));
    }
}

#[test]
fn main_view_csv_filters_overhead_views() {
    let s = synth();
    let out = tempfile::tempdir().unwrap();
    let mut cfg = config(out.path(), "MAIN");
    cfg.main_view_csv = Some(s.main_view_csv.clone());
    cfg.bdd_root = None;
    cfg.views = ViewFilter::Overhead;
    convert(&cfg).unwrap();
    let manifest = read_json(&dataset_dir(out.path(), "MAIN").join("manifest.json"));
    let videos: std::collections::BTreeSet<&str> = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["video"].as_str().unwrap())
        .collect();
    // Camera2 of A is not listed in the CSV; both IP cameras of B are.
    assert_eq!(videos.len(), 4, "{videos:?}");
    assert!(!videos.iter().any(|v| v.contains("Camera2_3")));
    assert!(videos.iter().all(|v| v.contains("overhead_view")));
}
