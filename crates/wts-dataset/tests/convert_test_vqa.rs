//! The public test VQA file (`SubTask2-VQA/WTS_VQA_PUBLIC_TEST.json`, one file for every
//! scenario; wts.md §1.5): questions go to the scenario whose videos they name, one sample per
//! question id, no answers.

mod convert_support;

use convert_support::{dataset_dir, read_json, synth_copy};
use serde_json::json;
use wts_dataset::convert::{ConvertConfig, convert};
use wts_dataset::layout::{Split, shared_vqa_files};
use wts_dataset::synth::SCENARIO_TEST as T;

#[test]
fn shared_test_vqa_file_is_distributed_by_video_name() {
    let (_tree, s) = synth_copy();
    let test_part = s.wts_root.parent().unwrap().join("test_part");
    let root = test_part.join("WTS_DATASET_PUBLIC_TEST");
    let shared = test_part.join("SubTask2-VQA");
    std::fs::create_dir_all(&shared).unwrap();
    let video = format!("{T}_Camera1_0.mp4");
    let file = json!([
        {"videos": [video], "event_phase": [{"labels": ["avoidance"], "start_time": "4.167", "end_time": "5.4",
            "conversations": [{"id": "uuid-1", "question": "What does the vehicle do?", "a": "Stops", "b": "Turns", "c": "Speeds up"}]}]},
        {"videos": [video], "conversations": [{"id": "uuid-2", "question": "Road type?", "a": "Highway", "b": "Residential"}]},
        {"videos": ["video9999.mp4"], "conversations": [{"id": "uuid-3", "question": "Weather?", "a": "Sun", "b": "Rain"}]}
    ]);
    let path = shared.join("WTS_VQA_PUBLIC_TEST.json");
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    assert_eq!(
        shared_vqa_files(&root, Split::Test).unwrap(),
        std::slice::from_ref(&path)
    );

    let out = tempfile::tempdir().unwrap();
    let mut cfg = ConvertConfig::new(out.path(), "TVQA");
    cfg.wts_root = Some(root);
    cfg.split = Split::Test;
    cfg.include_vqa = true;
    let report = convert(&cfg).unwrap();
    assert!(report.skipped.is_empty(), "{:#?}", report.skipped);
    // The BDD question names no video of the converted tree.
    assert!(
        report
            .missing
            .iter()
            .any(|m| m.file == path && m.reason.contains("entry 2")),
        "{:#?}",
        report.missing
    );

    let ds = read_json(&dataset_dir(out.path(), "TVQA").join("dataset.json"));
    let vqa: Vec<_> = ds
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"].as_str().unwrap().contains("/vqa/"))
        .collect();
    let ids: Vec<&str> = vqa.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            format!("{T}/{T}_Camera1_0/vqa/4/uuid-1"),
            format!("{T}/{T}_Camera1_0/vqa/env/uuid-2")
        ]
    );
    for r in &vqa {
        let conv = r["conversations"].as_array().unwrap();
        assert_eq!(conv.len(), 1, "no answer on the test split");
        assert!(conv[0]["value"].as_str().unwrap().contains("\na. "));
    }
}
