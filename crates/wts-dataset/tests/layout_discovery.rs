//! Layout discovery on the synthetic tree (wts.md §1.2): Camera/IP overhead names,
//! normal_trimmed without vehicle view, BDD with and without the `caption/` level, VQA file
//! name variants, the public test part, and missing pieces recorded.

mod convert_support;

use convert_support::{synth, synth_copy};
use wts_dataset::layout::{Source, Split, View, VqaRole, discover_bdd, discover_wts};
use wts_dataset::synth::{
    SCENARIO_CAMERA_STYLE, SCENARIO_IP_STYLE, SCENARIO_NORMAL, SCENARIO_TEST, SCENARIO_VAL,
};

#[test]
fn wts_train_scenarios_views_and_names() {
    let s = synth();
    let scs = discover_wts(&s.wts_root, Split::Train).unwrap();
    let names: Vec<&str> = scs.iter().map(|s| s.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    assert_eq!(
        names,
        [SCENARIO_CAMERA_STYLE, SCENARIO_IP_STYLE, SCENARIO_NORMAL]
    );

    // Camera-style: two overhead cameras + vehicle view.
    let a = &scs[0];
    assert_eq!(a.source, Source::Wts);
    let cams: Vec<Option<&str>> = a.videos.iter().map(|v| v.camera.as_deref()).collect();
    assert_eq!(cams, [Some("Camera1_0"), Some("Camera2_3"), None]);
    assert_eq!(a.videos[2].view, View::Vehicle);
    assert!(a.overhead_caption.is_some() && a.vehicle_caption.is_some());
    assert!(a.videos[0].bbox_annotated.pedestrian.is_some());
    assert!(a.videos[0].bbox_generated.vehicle.is_some());
    // Camera2 has no bbox file: recorded as missing, not fatal.
    assert!(a.videos[1].bbox_annotated.pedestrian.is_none());
    assert!(
        a.missing
            .iter()
            .any(|m| m.what.contains("bbox_annotated pedestrian") && m.what.contains("Camera2_3"))
    );

    // IP-style names.
    let b = &scs[1];
    let cams: Vec<Option<&str>> = b.videos.iter().map(|v| v.camera.as_deref()).collect();
    assert_eq!(cams, [Some("192.168.0.14_1"), Some("192.168.0.16_3"), None]);

    // normal_trimmed: one overhead video named after the scenario, no vehicle view, and the
    // absent vehicle view is not reported as missing.
    let n = &scs[2];
    assert!(n.normal);
    assert_eq!(n.videos.len(), 1);
    assert_eq!(n.videos[0].view, View::Overhead);
    assert_eq!(n.videos[0].camera, None);
    assert!(n.vehicle_caption.is_none());
    assert!(
        !n.missing
            .iter()
            .any(|m| m.what.contains("vehicle_view caption")),
        "{:?}",
        n.missing
    );
    assert!(n.videos[0].bbox_annotated.pedestrian.is_some());
}

#[test]
fn vqa_file_name_variants() {
    let s = synth();
    let scs = discover_wts(&s.wts_root, Split::Train).unwrap();
    // A uses `<scenario>.json`, B `<scenario>_overhead_view.json` (tsda naming).
    for sc in &scs[..2] {
        let roles: Vec<VqaRole> = sc.vqa.iter().map(|v| v.role).collect();
        assert_eq!(
            roles,
            [VqaRole::Environment, VqaRole::Overhead, VqaRole::Vehicle],
            "{}",
            sc.name
        );
    }
    let b_overhead = &scs[1].vqa[1].path;
    assert!(b_overhead.ends_with(format!("{SCENARIO_IP_STYLE}_overhead_view.json")));
    assert!(
        scs[0].vqa[1]
            .path
            .ends_with(format!("{SCENARIO_CAMERA_STYLE}.json"))
    );
    assert!(scs[2].vqa.is_empty());
}

#[test]
fn val_split() {
    let s = synth();
    let scs = discover_wts(&s.wts_root, Split::Val).unwrap();
    assert_eq!(scs.len(), 1);
    assert_eq!(scs[0].name, SCENARIO_VAL);
    assert_eq!(scs[0].split, Split::Val);
}

#[test]
fn public_test_part_with_nested_split_and_bbox_sibling_root() {
    let s = synth();
    let root = s
        .wts_root
        .parent()
        .unwrap()
        .join("test_part/WTS_DATASET_PUBLIC_TEST");
    let scs = discover_wts(&root, Split::Test).unwrap();
    assert_eq!(scs.len(), 1);
    let t = &scs[0];
    assert_eq!(t.name, SCENARIO_TEST);
    assert!(
        t.overhead_caption
            .as_ref()
            .unwrap()
            .to_string_lossy()
            .contains("public_challenge")
    );
    let bbox = t.videos[0].bbox_annotated.pedestrian.as_ref().unwrap();
    assert!(
        bbox.to_string_lossy()
            .contains("WTS_DATASET_PUBLIC_TEST_BBOX"),
        "{}",
        bbox.display()
    );
}

#[test]
fn wrong_root_is_an_error_naming_it() {
    let s = synth();
    let e = discover_wts(&s.bdd_root.join("nope"), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("not a WTS root"), "{e}");
    let e = discover_bdd(&s.wts_root, Split::Test)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a BDD_PC_5K root"), "{e}");
}

#[test]
fn bdd_with_caption_level() {
    let s = synth();
    let scs = discover_bdd(&s.bdd_root, Split::Train).unwrap();
    let names: Vec<&str> = scs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["video1004", "video1005"]);
    for sc in &scs {
        assert_eq!(sc.source, Source::Bdd);
        assert_eq!(sc.videos.len(), 1);
        assert_eq!(sc.videos[0].view, View::Vehicle);
        assert!(
            sc.vehicle_caption
                .as_ref()
                .unwrap()
                .to_string_lossy()
                .contains("/caption/train/")
        );
        assert!(sc.videos[0].bbox_annotated.pedestrian.is_some());
        assert!(sc.videos[0].bbox_annotated.vehicle.is_none());
        assert_eq!(sc.vqa.len(), 1);
        assert!(sc.missing.is_empty(), "{:?}", sc.missing);
    }
}

#[test]
fn bdd_without_caption_level_and_missing_pieces() {
    let (_dir, s) = synth_copy();
    let ann = s.bdd_root.join("annotations");
    std::fs::rename(ann.join("caption/train"), ann.join("train")).unwrap();
    std::fs::remove_dir(ann.join("caption")).unwrap();
    // One video without its caption, one caption without its video.
    std::fs::remove_file(ann.join("train/video1005_caption.json")).unwrap();
    std::fs::remove_file(s.bdd_root.join("videos/train/video1004.mp4")).unwrap();
    let scs = discover_bdd(&s.bdd_root, Split::Train).unwrap();
    assert_eq!(scs.len(), 2);
    let v4 = &scs[0];
    assert_eq!(
        v4.vehicle_caption.as_deref(),
        Some(ann.join("train/video1004_caption.json").as_path())
    );
    assert!(v4.videos.is_empty());
    assert!(v4.missing.iter().any(|m| m.what == "video"));
    let v5 = &scs[1];
    assert!(v5.vehicle_caption.is_none());
    assert!(v5.missing.iter().any(|m| m.what == "caption"));
}

#[test]
fn wts_missing_caption_and_videos_recorded() {
    let (_dir, s) = synth_copy();
    let cap = s
        .wts_root
        .join("annotations/caption/train")
        .join(SCENARIO_IP_STYLE);
    std::fs::remove_file(cap.join(format!("vehicle_view/{SCENARIO_IP_STYLE}_caption.json")))
        .unwrap();
    std::fs::remove_dir_all(s.wts_root.join("videos/train").join(SCENARIO_CAMERA_STYLE)).unwrap();
    let scs = discover_wts(&s.wts_root, Split::Train).unwrap();
    let a = scs
        .iter()
        .find(|x| x.name == SCENARIO_CAMERA_STYLE)
        .unwrap();
    assert!(a.videos.is_empty());
    assert!(a.missing.iter().any(|m| m.what == "video folder"));
    let b = scs.iter().find(|x| x.name == SCENARIO_IP_STYLE).unwrap();
    assert!(b.vehicle_caption.is_none());
    assert!(b.missing.iter().any(|m| m.what == "vehicle_view caption"));
}
