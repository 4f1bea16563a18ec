//! The synthetic raw tree: layout, JSON validity, determinism, and that its videos are real
//! H.264 High-profile files whose frames carry their own index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use wts_dataset::synth::{self, decode_frame_index};
use wts_dataset::video;

/// All files under `dir`, relative path -> bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("prefix").to_path_buf();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

#[test]
fn tree_layout_json_and_determinism() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let t0 = Instant::now();
    let sa = synth::write_synthetic_tree(a.path()).expect("first tree");
    eprintln!("synthetic tree written in {:?}", t0.elapsed());
    let sb = synth::write_synthetic_tree(b.path()).expect("second tree");
    assert_eq!(sa.videos, sb.videos);
    assert_eq!(sa.wts_root, a.path().join("WTS"));
    assert_eq!(sa.bdd_root, a.path().join("BDD_PC_5k"));
    assert!(sa.main_view_csv.is_file());
    assert_eq!(sa.scenarios.len(), 7);

    let fa = snapshot(a.path());
    let fb = snapshot(b.path());
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    let mp4s: Vec<&PathBuf> = fa
        .keys()
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    assert_eq!(mp4s.len(), sa.videos);
    assert_eq!(sa.videos, 12);
    // No temporary files left behind.
    assert!(fa.keys().all(|p| !p.to_string_lossy().contains(".tmp-")));
    let mut json_count = 0;
    for (rel, bytes) in &fa {
        // Byte-identical across two independent writes: JSON, CSV and the MP4s (libx264 with
        // -threads 1 and bit-exact muxing is deterministic for one ffmpeg build).
        assert!(
            bytes == &fb[rel],
            "{} differs between two writes",
            rel.display()
        );
        if rel.extension().is_some_and(|e| e == "json") {
            serde_json::from_slice::<serde_json::Value>(bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
            json_count += 1;
        }
    }
    assert!(json_count >= 40, "only {json_count} JSON files");

    // Idempotent: a second write into the same root leaves every file (and its mtime) alone.
    let probe_file = a.path().join(mp4s[0]);
    let before = std::fs::metadata(&probe_file)
        .and_then(|m| m.modified())
        .expect("mtime");
    synth::write_synthetic_tree(a.path()).expect("rewrite");
    let after = std::fs::metadata(&probe_file)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(before, after);
    assert_eq!(snapshot(a.path()), fa);

    // Exact layout of wts.md §1.2 for the key files.
    let sc = synth::SCENARIO_CAMERA_STYLE;
    let ip = synth::SCENARIO_IP_STYLE;
    let nm = synth::SCENARIO_NORMAL;
    for rel in [
        format!("WTS/videos/train/{sc}/overhead_view/{sc}_Camera1_0.mp4"),
        format!("WTS/videos/train/{sc}/overhead_view/{sc}_Camera2_3.mp4"),
        format!("WTS/videos/train/{sc}/vehicle_view/{sc}_vehicle_view.mp4"),
        format!("WTS/videos/train/{ip}/overhead_view/{ip}_192.168.0.14_1.mp4"),
        format!("WTS/videos/train/normal_trimmed/{nm}/overhead_view/{nm}.mp4"),
        format!("WTS/annotations/caption/train/{sc}/overhead_view/{sc}_caption.json"),
        format!("WTS/annotations/caption/train/{sc}/vehicle_view/{sc}_caption.json"),
        format!(
            "WTS/annotations/caption/train/normal_trimmed/{nm}/overhead_view/{nm}_caption.json"
        ),
        format!(
            "WTS/annotations/bbox_annotated/pedestrian/train/{sc}/overhead_view/{sc}_Camera1_0_bbox.json"
        ),
        format!(
            "WTS/annotations/bbox_generated/vehicle/train/{ip}/overhead_view/{ip}_192.168.0.16_3_bbox.json"
        ),
        format!(
            "WTS/annotations/bbox_annotated/pedestrian/train/normal_trimmed/{nm}/overhead_view/{nm}_bbox.json"
        ),
        format!("WTS/annotations/vqa/train/{sc}/environment/{sc}.json"),
        format!("WTS/annotations/vqa/train/{sc}/overhead_view/{sc}.json"),
        format!("WTS/annotations/vqa/train/{ip}/overhead_view/{ip}_overhead_view.json"),
        format!("WTS/annotations/vqa/train/{sc}/vehicle_view/{sc}.json"),
        "BDD_PC_5k/videos/train/video1004.mp4".to_string(),
        "BDD_PC_5k/videos/train/video1005.mp4".to_string(),
        "BDD_PC_5k/annotations/caption/train/video1005_caption.json".to_string(),
        "BDD_PC_5k/annotations/bbox_annotated/train/video1005_bbox.json".to_string(),
        "BDD_PC_5k/annotations/vqa/train/video1004/vehicle_view/video1004.json".to_string(),
        format!(
            "test_part/WTS_DATASET_PUBLIC_TEST/videos/test/public/{t}/overhead_view/{t}_Camera1_0.mp4",
            t = synth::SCENARIO_TEST
        ),
        format!(
            "test_part/WTS_DATASET_PUBLIC_TEST/annotations/caption/test/public_challenge/{t}/overhead_view/{t}_caption.json",
            t = synth::SCENARIO_TEST
        ),
        format!(
            "test_part/WTS_DATASET_PUBLIC_TEST_BBOX/annotations/bbox_annotated/pedestrian/test/public/{t}/overhead_view/{t}_Camera1_0_bbox.json",
            t = synth::SCENARIO_TEST
        ),
    ] {
        assert!(fa.contains_key(Path::new(&rel)), "missing {rel}");
    }
    // Camera2 of scenario A has no bbox file at all; the normal scenario has no vehicle view.
    assert!(
        !fa.keys()
            .any(|p| p.to_string_lossy().contains("Camera2_3_bbox"))
    );
    assert!(
        !fa.keys()
            .any(|p| p.to_string_lossy().contains(&format!("{nm}_vehicle_view")))
    );

    // Main-view CSV: header, then scenario rows.
    let csv = String::from_utf8(
        fa[Path::new("test_part/view_used_as_main_reference_for_multiview_scenario.csv")].clone(),
    )
    .expect("utf8");
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("Scene,"));
    assert!(rows[1].starts_with(&format!("{sc},{sc}_Camera1_0.mp4")));
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

fn time_of(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().expect("time string"),
        other => other.as_f64().expect("time number"),
    }
}

#[test]
fn schema_variants_times_inside_videos_and_boxes_on_the_shapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = synth::write_synthetic_tree(dir.path()).expect("tree");
    let sc = synth::SCENARIO_CAMERA_STYLE;
    let ip = synth::SCENARIO_IP_STYLE;

    // A: digits, string times, reverse order, overlapping phases.
    let a = read_json(&s.wts_root.join(format!(
        "annotations/caption/train/{sc}/overhead_view/{sc}_caption.json"
    )));
    let ev = a["event_phase"].as_array().expect("phases");
    let labels: Vec<&str> = ev
        .iter()
        .map(|p| p["labels"][0].as_str().expect("label"))
        .collect();
    assert_eq!(labels, ["4", "3", "2", "1", "0"]);
    assert!(ev[0]["start_time"].is_string());
    assert_eq!(a["overhead_videos"].as_array().map(Vec::len), Some(2));
    // Overlap: phase 1 ends after phase 2 starts.
    assert!(time_of(&ev[3]["end_time"]) > time_of(&ev[2]["start_time"]));
    let captions: Vec<&str> = ev
        .iter()
        .map(|p| p["caption_pedestrian"].as_str().expect("caption"))
        .collect();
    assert!(captions.windows(2).all(|w| w[0] != w[1]));
    // Vehicle-view file: only vehicle_view + event_phase, smaller times.
    let veh = read_json(&s.wts_root.join(format!(
        "annotations/caption/train/{sc}/vehicle_view/{sc}_caption.json"
    )));
    let keys: Vec<&String> = veh.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["vehicle_view", "event_phase"]);
    assert!(time_of(&veh["event_phase"][0]["start_time"]) < time_of(&ev[0]["start_time"]));
    // B: names with variant spellings, numeric times.
    let b = read_json(&s.wts_root.join(format!(
        "annotations/caption/train/{ip}/overhead_view/{ip}_caption.json"
    )));
    let labels: Vec<&str> = b["event_phase"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["labels"][0].as_str().expect("label"))
        .collect();
    assert_eq!(
        labels,
        [
            "pre-recognition",
            "recognition",
            "judgment",
            "action",
            "avoidance"
        ]
    );
    assert!(b["event_phase"][0]["start_time"].is_number());
    // Test split: times, no captions.
    let t = synth::SCENARIO_TEST;
    let tc = read_json(&dir.path().join(format!("test_part/WTS_DATASET_PUBLIC_TEST/annotations/caption/test/public_challenge/{t}/overhead_view/{t}_caption.json")));
    assert!(tc["event_phase"][0].get("caption_pedestrian").is_none());
    assert!(tc["event_phase"][0]["start_time"].is_string());
    // BDD: fps strings, names, int phase_number, int boxes.
    let bc = read_json(
        &s.bdd_root
            .join("annotations/caption/train/video1005_caption.json"),
    );
    assert_eq!(bc["fps"], "59.940");
    assert_eq!(bc["event_phase"][0]["labels"][0], "prerecognition");
    let bb = read_json(
        &s.bdd_root
            .join("annotations/bbox_annotated/train/video1005_bbox.json"),
    );
    let first = &bb["annotations"][0];
    assert!(first["phase_number"].is_u64());
    assert!(first["bbox"][0].is_i64());
    assert_eq!(first["image_id"], 24); // round(0.4 * 59.94)
    // VQA: list of one element; BDD uses `videos`.
    let vq = read_json(
        &s.bdd_root
            .join("annotations/vqa/train/video1004/vehicle_view/video1004.json"),
    );
    assert_eq!(vq.as_array().map(Vec::len), Some(1));
    assert!(vq[0]["videos"].is_array());
    let env = read_json(
        &s.wts_root
            .join(format!("annotations/vqa/train/{sc}/environment/{sc}.json")),
    );
    assert!(env[0]["environment"][0]["correct"].is_string());

    // Every caption file's times lie inside its video; every annotated box sits on the drawn
    // shape in the frame at image_id / fps.
    let cases: Vec<(PathBuf, PathBuf, PathBuf, [u8; 3])> = vec![
        (
            s.wts_root.join(format!("annotations/caption/train/{sc}/overhead_view/{sc}_caption.json")),
            s.wts_root.join(format!("videos/train/{sc}/overhead_view/{sc}_Camera1_0.mp4")),
            s.wts_root.join(format!("annotations/bbox_annotated/pedestrian/train/{sc}/overhead_view/{sc}_Camera1_0_bbox.json")),
            synth::PEDESTRIAN_COLOR,
        ),
        (
            s.wts_root.join(format!("annotations/caption/train/{sc}/vehicle_view/{sc}_caption.json")),
            s.wts_root.join(format!("videos/train/{sc}/vehicle_view/{sc}_vehicle_view.mp4")),
            s.wts_root.join(format!("annotations/bbox_annotated/pedestrian/train/{sc}/vehicle_view/{sc}_vehicle_view_bbox.json")),
            synth::PEDESTRIAN_COLOR,
        ),
        (
            s.wts_root.join(format!("annotations/caption/train/{ip}/overhead_view/{ip}_caption.json")),
            s.wts_root.join(format!("videos/train/{ip}/overhead_view/{ip}_192.168.0.16_3.mp4")),
            s.wts_root.join(format!("annotations/bbox_annotated/vehicle/train/{ip}/overhead_view/{ip}_192.168.0.16_3_bbox.json")),
            synth::VEHICLE_COLOR,
        ),
        (
            s.bdd_root.join("annotations/caption/train/video1005_caption.json"),
            s.bdd_root.join("videos/train/video1005.mp4"),
            s.bdd_root.join("annotations/bbox_annotated/train/video1005_bbox.json"),
            synth::PEDESTRIAN_COLOR,
        ),
    ];
    for (caption, video, bbox, color) in cases {
        let info = video::probe(&video).expect("probe");
        let cap = read_json(&caption);
        let phases = cap["event_phase"].as_array().expect("phases");
        let mut starts = Vec::new();
        for p in phases {
            let (st, en) = (time_of(&p["start_time"]), time_of(&p["end_time"]));
            assert!(
                0.0 <= st && st < en && en <= info.duration_s,
                "{}: {st}-{en} vs {}",
                caption.display(),
                info.duration_s
            );
            starts.push(st);
        }
        let fps_ann = cap
            .get("fps")
            .and_then(|f| f.as_str())
            .map(|f| f.parse::<f64>().expect("fps"))
            .unwrap_or(30.0);
        let anns = read_json(&bbox)["annotations"]
            .as_array()
            .expect("anns")
            .clone();
        assert_eq!(anns.len(), phases.len());
        for a in &anns {
            let id = a["image_id"].as_u64().expect("id");
            assert!(
                starts.iter().any(|st| (st * fps_ann).round() as u64 == id),
                "{id} is not round(start*fps)"
            );
            let t = id as f64 / fps_ann;
            let frame = video::frame_at(&video, &info, t).expect("frame");
            assert_eq!(
                decode_frame_index(&frame),
                Some(id),
                "{} at {t}",
                video.display()
            );
            let bx: Vec<f64> = a["bbox"]
                .as_array()
                .expect("bbox")
                .iter()
                .map(|v| v.as_f64().expect("num"))
                .collect();
            // Centre pixel of the box has the shape's colour (within compression error).
            let (cx, cy) = ((bx[0] + bx[2] / 2.0) as u32, (bx[1] + bx[3] / 2.0) as u32);
            let p = frame.get_pixel(cx, cy).0;
            for c in 0..3 {
                assert!(
                    (i32::from(p[c]) - i32::from(color[c])).abs() < 30,
                    "{} frame {id}: {p:?} vs {color:?}",
                    video.display()
                );
            }
            // Just outside the box (left) is background grey.
            if bx[0] >= 3.0 {
                let q = frame.get_pixel(bx[0] as u32 - 3, cy).0;
                assert!(q.iter().all(|&v| (i32::from(v) - 128).abs() < 30), "{q:?}");
            }
        }
    }
}

#[test]
fn synth_videos_are_h264_high_profile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = synth::write_synthetic_tree(dir.path()).expect("tree");
    for (rel, w, h, fps, frames) in [
        (
            format!(
                "videos/train/{a}/overhead_view/{a}_Camera1_0.mp4",
                a = synth::SCENARIO_CAMERA_STYLE
            ),
            320,
            180,
            30.0,
            240,
        ),
        (
            "videos/train/video1004.mp4".to_string(),
            256,
            144,
            30000.0 / 1001.0,
            180,
        ),
        (
            "videos/train/video1005.mp4".to_string(),
            256,
            144,
            60000.0 / 1001.0,
            300,
        ),
    ] {
        let root = if rel.contains("video100") {
            &s.bdd_root
        } else {
            &s.wts_root
        };
        let path = root.join(&rel);
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=codec_name,profile,pix_fmt",
                "-of",
                "csv=p=0",
            ])
            .arg(&path)
            .output()
            .expect("ffprobe");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "h264,High,yuv420p"
        );
        let info = video::probe(&path).expect("probe");
        assert_eq!((info.width, info.height, info.frame_count), (w, h, frames));
        assert!((info.fps - fps).abs() < 1e-9, "{} fps {}", rel, info.fps);
        assert!((info.duration_s - frames as f64 / fps).abs() < 1e-3);
        assert_eq!(info.codec, "h264");
    }
}
