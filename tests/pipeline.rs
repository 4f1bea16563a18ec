//! End-to-end tests of the pipeline as a user runs it: `cargo xtask demo`, then `cargo xtask eval`
//! on a submission built from the synthetic ground truth. They run the real `xtask` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

fn xtask(args: &[&str]) -> (bool, String, String) {
    // The demo's last step runs the real `infer-cli`; `cargo test --workspace` builds it next
    // to the xtask binary.
    let xtask = Path::new(env!("CARGO_BIN_EXE_xtask"));
    let infer_cli = xtask.with_file_name(format!("infer-cli{}", std::env::consts::EXE_SUFFIX));
    let out = Command::new(xtask)
        .args(args)
        .env("XTASK_INFER_CLI", infer_cli)
        .output()
        .expect("run xtask");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("parse")
}

/// Every caption JSON file under `dir` (recursively), sorted.
fn caption_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with("_caption.json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn demo_builds_a_valid_dataset_and_registry_and_eval_scores_a_perfect_submission() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let (ok, stdout, stderr) = xtask(&["demo", "--out", out.to_str().unwrap()]);
    assert!(ok, "demo failed:\n{stderr}");

    // LoRA training of the tiny checkpoint wrote checkpoints and a PEFT adapter, and
    // `infer-cli generate --adapter` answered with it.
    let run = out.join("run");
    for name in [
        "checkpoint-2/adapter_model.safetensors",
        "checkpoint-4/optimizer.safetensors",
        "checkpoint-4/trainer_state.json",
        "checkpoint-4/config.json",
        "checkpoint-4/scheduler.json",
        "adapter_config.json",
        "adapter_model.safetensors",
        "trainer_state.json",
        "metrics.jsonl",
        "loss_curve.png",
        "config.json",
    ] {
        assert!(run.join(name).is_file(), "demo run lacks {name}");
    }
    let state = read_json(&run.join("trainer_state.json"));
    assert_eq!(state["global_step"], 4);
    assert_eq!(state["log_history"].as_array().map(Vec::len), Some(4));
    assert!(
        stderr.contains("[7/7] infer-cli generate --adapter"),
        "{stderr}"
    );
    assert!(stderr.contains("demo done"), "{stderr}");

    // The dataset VILA would load: a list of records whose media all exist.
    let dataset_dir = out.join("data/WTS_dataset");
    let records = read_json(&dataset_dir.join("dataset.json"));
    let records = records.as_array().expect("dataset.json is a list");
    assert!(records.len() > 50, "only {} records", records.len());
    for r in records {
        let conv = r["conversations"].as_array().unwrap();
        assert_eq!(conv[0]["from"], "human");
        assert!(conv[0]["value"].as_str().unwrap().starts_with("<image>\n"));
        assert_eq!(conv[1]["from"], "gpt");
        let image = r["image"].as_str().unwrap();
        assert!(dataset_dir.join(image).is_file(), "{image} missing");
    }

    // The registry names it with absolute paths, and validation counted every record.
    let yaml = std::fs::read_to_string(out.join("registry/default.yaml")).unwrap();
    assert!(
        yaml.contains("WTS:") && yaml.contains("_target_: llava.data.LLaVADataset"),
        "{yaml}"
    );
    assert!(
        yaml.contains(&dataset_dir.join("dataset.json").display().to_string()),
        "{yaml}"
    );
    let report: Value = serde_json::from_str(&stdout).expect("validation report JSON on stdout");
    assert_eq!(report["datasets"][0]["records"], json!(records.len()));
    assert_eq!(report["samples_per_epoch"], json!(records.len()));

    // A submission that repeats the ground truth scores (almost) 100 through the CLI.
    let raw = out.join("raw");
    let gt_wts = raw.join("WTS/annotations/caption/train");
    let gt_bdd = raw.join("BDD_PC_5k/annotations/caption/train");
    let mut submission = Map::new();
    for file in caption_files(&gt_wts)
        .into_iter()
        .chain(caption_files(&gt_bdd))
    {
        if file.components().any(|c| c.as_os_str() == "vehicle_view") {
            continue;
        }
        let gt = read_json(&file);
        let key = match gt.get("video_name").and_then(Value::as_str) {
            Some(video) => video.trim_end_matches(".mp4").to_string(),
            None => file
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        };
        let segments: Vec<Value> = gt["event_phase"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| json!({"labels": p["labels"], "caption_pedestrian": p["caption_pedestrian"], "caption_vehicle": p["caption_vehicle"]}))
            .collect();
        submission.insert(key, Value::Array(segments));
    }
    assert!(
        submission.keys().any(|k| k.starts_with("video"))
            && submission.keys().any(|k| k.starts_with("2023"))
    );
    let pred = tmp.path().join("submission.json");
    std::fs::write(
        &pred,
        serde_json::to_string(&Value::Object(submission)).unwrap(),
    )
    .unwrap();
    let (ok, stdout, stderr) = xtask(&[
        "eval",
        "--pred",
        pred.to_str().unwrap(),
        "--gt-wts",
        gt_wts.to_str().unwrap(),
        "--gt-bdd",
        gt_bdd.to_str().unwrap(),
    ]);
    assert!(ok, "eval failed:\n{stderr}");
    let scores: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    for dataset in ["wts", "bdd"] {
        for subject in ["pedestrian", "vehicle"] {
            let m = &scores[dataset][subject];
            assert!((m["bleu4"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{m}");
            assert!((m["rouge_l"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{m}");
            assert!((m["cider"].as_f64().unwrap() - 10.0).abs() < 1e-9, "{m}");
            // METEOR's fragmentation penalty keeps a perfect match just under 1 (nltk).
            let meteor = m["meteor"].as_f64().unwrap();
            assert!(meteor > 0.99 && meteor < 1.0, "{m}");
        }
    }
    let score = scores["score"].as_f64().unwrap();
    assert!(score > 99.0 && score <= 100.0, "{scores}");
}

#[test]
fn eval_reports_a_malformed_submission_by_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let pred = tmp.path().join("broken_submission.json");
    std::fs::write(&pred, "{\"20230707_12_SN17_T1\": [").unwrap();
    let gt = tmp.path().join("gt");
    std::fs::create_dir_all(gt.join("annotations")).unwrap();
    std::fs::create_dir_all(gt.join("external/BDD_PC_5K/annotations")).unwrap();
    let (ok, _, stderr) = xtask(&[
        "eval",
        "--pred",
        pred.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("broken_submission.json"), "{stderr}");
}
