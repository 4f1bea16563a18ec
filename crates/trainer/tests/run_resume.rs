//! The trainer end to end on the tiny golden checkpoint and a real VILA dataset: an interrupted
//! run (stopped, SIGKILLed, or crashed in the middle of writing a checkpoint) resumes to exactly
//! the adapter an uninterrupted run produces (bit-equal on CPU); a finished run is skipped; a
//! full disk while saving leaves the previous checkpoint intact; bad inputs fail clearly.

#[path = "data_support/mod.rs"]
mod data_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use data_support::{tiny_checkpoint, write_dataset, write_registry};
use trainer::checkpoint::FailAfter;
use trainer::config::TrainConfig;
use trainer::run::{RunError, RunOptions, RunOutcome, train};

const STEPS: u64 = 6;

fn data(root: &Path) -> PathBuf {
    let (json, media) = write_dataset(root, "wts", 8);
    let reg = root.join("registry.yaml");
    write_registry(&reg, &[("wts", json, media)]);
    reg
}

fn args(registry: &Path, out: &Path) -> Vec<(String, String)> {
    [
        ("model_path", tiny_checkpoint().display().to_string()),
        ("registry", registry.display().to_string()),
        ("data_mixture", "wts".into()),
        ("output_dir", out.display().to_string()),
        ("device", "cpu".into()),
        ("dtype", "f32".into()),
        ("lora_enable", "true".into()),
        ("lora_llm", "true".into()),
        ("lora_r", "4".into()),
        ("lora_alpha", "8".into()),
        // Dropout on: resuming must also restore the dropout streams.
        ("lora_dropout", "0.05".into()),
        ("learning_rate", "1e-3".into()),
        ("warmup_ratio", "0.03".into()),
        ("weight_decay", "0.01".into()),
        ("global_train_batch_size", "2".into()),
        ("max_steps", STEPS.to_string()),
        ("save_steps", "2".into()),
        ("dataloader_num_workers", "2".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn config(registry: &Path, out: &Path) -> TrainConfig {
    TrainConfig::resolve(None, &HashMap::new(), &args(registry, out)).unwrap()
}

fn quiet() -> RunOptions {
    RunOptions {
        progress: Some(trainer::metrics::ProgressMode::Hidden),
        ..RunOptions::default()
    }
}

/// The adapter file's bytes, compared by a digest so a failure does not print megabytes.
fn adapter_bytes(dir: &Path) -> (usize, u32) {
    let bytes = std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
    (bytes.len(), crc32fast::hash(&bytes))
}

/// burn's random streams (LoRA dropout) are per device and process-wide: runs in parallel test
/// threads would draw from each other's streams, so this file's runs take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn losses(dir: &Path) -> Vec<(u64, f64)> {
    trainer::metrics::read_metrics(&dir.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .map(|r| (r.step, r.loss))
        .collect()
}

/// Runs `cfg` for 3 steps (checkpoint-2 complete, step 3 lost), then the same again to the end.
fn stop_after_3_then_resume(cfg: &TrainConfig) {
    let stop = RunOptions {
        stop_after: Some(3),
        ..quiet()
    };
    assert_eq!(train(cfg, &stop).unwrap(), RunOutcome::Stopped(3));
    let resumed = train(cfg, &quiet()).unwrap();
    assert!(matches!(resumed, RunOutcome::Finished { steps: STEPS, .. }));
}

/// One uninterrupted run, shared by the tests of this file.
fn reference(root: &Path, registry: &Path) -> PathBuf {
    let out = root.join("uninterrupted");
    let outcome = train(&config(registry, &out), &quiet()).unwrap();
    assert!(matches!(outcome, RunOutcome::Finished { steps: STEPS, .. }));
    out
}

#[test]
fn stopped_run_resumes_to_the_uninterrupted_adapter_and_a_finished_run_is_skipped() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let registry = data(tmp.path());
    let full = reference(tmp.path(), &registry);
    for name in [
        "checkpoint-2",
        "checkpoint-4",
        "checkpoint-6",
        "config.json",
        "loss_curve.png",
    ] {
        assert!(full.join(name).exists(), "{name} missing");
    }
    let losses_full = losses(&full);
    assert_eq!(losses_full.len(), STEPS as usize);
    assert!(losses_full.iter().all(|(_, l)| l.is_finite() && *l > 0.0));

    // Stopped after 3 steps (checkpoint-2 complete, step 3 lost), then the same command again.
    let out = tmp.path().join("resumed");
    let cfg = config(&registry, &out);
    let stopped = train(
        &cfg,
        &RunOptions {
            stop_after: Some(3),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(stopped, RunOutcome::Stopped(3));
    let resumed = train(&cfg, &quiet()).unwrap();
    assert!(matches!(resumed, RunOutcome::Finished { steps: STEPS, .. }));
    assert_eq!(
        adapter_bytes(&out),
        adapter_bytes(&full),
        "final adapters differ"
    );
    assert_eq!(losses(&out), losses_full, "metrics after resume differ");
    let state = |d: &Path| std::fs::read_to_string(d.join("trainer_state.json")).unwrap();
    assert_eq!(state(&out), state(&full));

    // Finished: nothing is retrained, nothing changes.
    let before = adapter_bytes(&out);
    assert_eq!(train(&cfg, &quiet()).unwrap(), RunOutcome::AlreadyFinished);
    assert_eq!(adapter_bytes(&out), before);
}

/// With `tune_mm_projector` and `tune_vision_tower` the tuned f32 values come back from the
/// checkpoint's `non_lora_trainables.safetensors` and their AdamW moments from the optimizer
/// file: the resumed run ends with the same adapter, projector and tower as the uninterrupted one.
#[test]
fn run_with_tuned_projector_and_tower_resumes_to_the_same_weights() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let registry = data(tmp.path());
    let with_projector = |out: &Path| {
        let mut a = args(&registry, out);
        a.push(("tune_mm_projector".into(), "true".into()));
        a.push(("tune_vision_tower".into(), "true".into()));
        TrainConfig::resolve(None, &HashMap::new(), &a).unwrap()
    };
    let projector = |d: &Path| std::fs::read(d.join("non_lora_trainables.safetensors")).unwrap();

    let full = tmp.path().join("uninterrupted");
    let outcome = train(&with_projector(&full), &quiet()).unwrap();
    assert!(matches!(outcome, RunOutcome::Finished { steps: STEPS, .. }));
    // The projector trained: its file holds VILA's keys, and a LoRA-only run's is empty.
    let trained = projector(&full);
    let st = safetensors::SafeTensors::deserialize(&trained).unwrap();
    for key in [
        "base_model.model.mm_projector.layers.7.weight",
        "base_model.model.vision_tower.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight",
    ] {
        assert!(st.names().contains(&key), "{key} missing");
    }
    assert!(projector(&full.join("checkpoint-2")).len() > 1000);

    let out = tmp.path().join("resumed");
    stop_after_3_then_resume(&with_projector(&out));
    assert_eq!(adapter_bytes(&out), adapter_bytes(&full), "adapters differ");
    assert!(projector(&out) == trained, "tuned tensors differ");
    assert_eq!(losses(&out), losses(&full), "metrics after resume differ");
}

/// With `lora_vt` (and LoRA dropout on) the tower's factors train too, drawing their dropout
/// masks from a seeded stream: the resumed run ends with the uninterrupted run's adapter.
#[test]
fn run_with_lora_on_the_tower_resumes_to_the_same_adapter() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let registry = data(tmp.path());
    let with_vt = |out: &Path| {
        let mut a = args(&registry, out);
        a.push(("lora_vt".into(), "true".into()));
        TrainConfig::resolve(None, &HashMap::new(), &a).unwrap()
    };
    let full = tmp.path().join("uninterrupted");
    let outcome = train(&with_vt(&full), &quiet()).unwrap();
    assert!(matches!(outcome, RunOutcome::Finished { steps: STEPS, .. }));
    let bytes = std::fs::read(full.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let key = "base_model.model.vision_tower.vision_tower.vision_model.encoder.layers.0.mlp.fc1.lora_B.weight";
    assert!(st.names().contains(&key), "{key} missing");

    let out = tmp.path().join("resumed");
    stop_after_3_then_resume(&with_vt(&out));
    assert_eq!(adapter_bytes(&out), adapter_bytes(&full), "adapters differ");
    assert_eq!(losses(&out), losses(&full), "metrics after resume differ");
}

#[test]
fn sigkill_and_a_crash_while_writing_a_checkpoint_resume_to_the_same_adapter() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let registry = data(tmp.path());
    let full = reference(tmp.path(), &registry);
    let bin = env!("CARGO_BIN_EXE_trainer");
    let flags = |out: &Path| -> Vec<String> {
        args(&registry, out)
            .into_iter()
            .flat_map(|(k, v)| [format!("--{}", k.replace('_', "-")), v])
            .collect()
    };

    // A crash in the middle of writing checkpoint-4: budget = all of checkpoint-2's files plus
    // half of checkpoint-4's.
    let size = |d: PathBuf| -> u64 {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    let budget = size(full.join("checkpoint-2")) + size(full.join("checkpoint-4")) / 2;
    let out = tmp.path().join("crashed");
    let status = Command::new(bin)
        .args(flags(&out))
        .args(["--crash-after-checkpoint-bytes", &budget.to_string()])
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(!status.success(), "the crash hook did not fire");
    assert!(out.join("checkpoint-2").exists());
    assert!(
        !out.join("checkpoint-4").exists(),
        "a half-written checkpoint was published"
    );
    let status = Command::new(bin).args(flags(&out)).status().unwrap();
    assert!(status.success());
    assert_eq!(adapter_bytes(&out), adapter_bytes(&full));

    // SIGKILL as soon as the first checkpoint is published.
    let out = tmp.path().join("killed");
    let mut child = Command::new(bin)
        .args(flags(&out))
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !out.join("latest").exists() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = child.kill(); // SIGKILL on Unix
    let _ = child.wait();
    let status = Command::new(bin).args(flags(&out)).status().unwrap();
    assert!(status.success());
    assert_eq!(adapter_bytes(&out), adapter_bytes(&full));
}

#[test]
fn disk_full_while_saving_keeps_the_previous_checkpoint() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let registry = data(tmp.path());
    let full = reference(tmp.path(), &registry);
    let ckpt2: u64 = std::fs::read_dir(full.join("checkpoint-2"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let out = tmp.path().join("full-disk");
    let cfg = config(&registry, &out);
    let sink = FailAfter::new(ckpt2 + 100, std::io::ErrorKind::StorageFull);
    let err = train(
        &cfg,
        &RunOptions {
            checkpoint_sink: Some(Arc::new(sink)),
            ..quiet()
        },
    )
    .unwrap_err();
    assert!(matches!(err, RunError::Checkpoint(_)), "{err}");
    let entries: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(entries.contains(&"checkpoint-2".to_string()), "{entries:?}");
    assert!(
        !entries.iter().any(|e| e.starts_with("tmp-checkpoint")),
        "{entries:?}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("latest")).unwrap().trim(),
        "checkpoint-2"
    );
    // With space again, the same command finishes with the uninterrupted adapter.
    train(&cfg, &quiet()).unwrap();
    assert_eq!(adapter_bytes(&out), adapter_bytes(&full));
}

#[test]
fn bad_inputs_fail_with_clear_errors() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let registry = data(tmp.path());
    let out = tmp.path().join("bad");
    let with = |k: &str, v: &str| {
        let mut a = args(&registry, &out);
        a.retain(|(name, _)| name != k);
        a.push((k.into(), v.into()));
        a
    };
    // Unknown dataset name in DATA_MIXTURE.
    let cfg = TrainConfig::resolve(None, &HashMap::new(), &with("data_mixture", "nope")).unwrap();
    let err = train(&cfg, &quiet()).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
    // lora_r 0.
    let err = TrainConfig::resolve(None, &HashMap::new(), &with("lora_r", "0"))
        .and_then(|c| c.validate().map(|_| c))
        .unwrap_err()
        .to_string();
    assert!(err.contains("lora_r"), "{err}");
    // GLOBAL_TRAIN_BATCH_SIZE not divisible by devices × per-device batch.
    let mut a = with("per_device_train_batch_size", "2");
    a.retain(|(k, _)| k != "global_train_batch_size");
    let env = HashMap::from([("GLOBAL_TRAIN_BATCH_SIZE".to_string(), "3".to_string())]);
    let err = TrainConfig::resolve(None, &env, &a)
        .unwrap_err()
        .to_string();
    assert!(err.contains('3') && err.contains('2'), "{err}");
    // lora_vt and tune_vision_tower together (VILA silently applies only lora_vt): refused, and
    // nothing is written.
    let mut a = with("lora_vt", "true");
    a.push(("tune_vision_tower".into(), "true".into()));
    let cfg = TrainConfig::resolve(None, &HashMap::new(), &a).unwrap();
    let err = train(&cfg, &quiet()).unwrap_err().to_string();
    assert!(
        err.contains("lora_vt") && err.contains("tune_vision_tower"),
        "{err}"
    );
    assert!(!out.exists(), "a refused run wrote {}", out.display());
    // A NaN loss stops with the step: an enormous learning rate blows the tiny model up.
    let cfg = TrainConfig::resolve(None, &HashMap::new(), &with("learning_rate", "1e30")).unwrap();
    match train(&cfg, &quiet()) {
        Err(RunError::NonFiniteLoss { step, .. }) => assert!(step >= 2),
        other => panic!("expected a non-finite loss, got {:?}", other.map(|_| ())),
    }
    // An init adapter for another base model (wrong shapes) is refused.
    let tiny = tempfile::tempdir().unwrap();
    let adapter_dir = tiny.path().join("adapter");
    std::fs::create_dir_all(&adapter_dir).unwrap();
    let mut factors = std::collections::BTreeMap::new();
    factors.insert(
        "llm.model.layers.0.self_attn.q_proj".to_string(),
        lora::LoraFactors {
            lora_a: burn::tensor::TensorData::new(vec![0f32; 4 * 7], [4, 7]),
            lora_b: burn::tensor::TensorData::new(vec![0f32; 7 * 4], [7, 4]),
        },
    );
    let adapter_cfg = lora::AdapterConfig::new(
        4,
        8.0,
        lora::TargetModules::Names(vec!["llm.model.layers.0.self_attn.q_proj".into()]),
    );
    lora::PeftAdapter::new(adapter_cfg, factors)
        .unwrap()
        .save(&adapter_dir)
        .unwrap();
    let cfg = config(&registry, &tmp.path().join("bad2"));
    let err = train(
        &cfg,
        &RunOptions {
            init_adapter: Some(adapter_dir),
            ..quiet()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("q_proj"), "{err}");
}

#[test]
fn bf16_run_trains_with_finite_losses_and_f32_adapters() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let registry = data(tmp.path());
    let out = tmp.path().join("bf16");
    let mut a = args(&registry, &out);
    for (k, v) in a.iter_mut() {
        match k.as_str() {
            "dtype" => *v = "bf16".into(),
            "max_steps" => *v = "2".into(),
            _ => {}
        }
    }
    let cfg = TrainConfig::resolve(None, &HashMap::new(), &a).unwrap();
    let outcome = train(&cfg, &quiet()).unwrap();
    assert!(matches!(outcome, RunOutcome::Finished { steps: 2, .. }));
    let l = losses(&out);
    assert!(
        l.len() == 2 && l.iter().all(|(_, x)| x.is_finite()),
        "{l:?}"
    );
    // Adapters stay f32 whatever the compute dtype (PEFT saves f32 factors too).
    let adapter = lora::PeftAdapter::load(&out).unwrap();
    for factors in adapter.modules.values() {
        assert_eq!(factors.lora_a.dtype(), burn::tensor::DType::F32);
        assert_eq!(factors.lora_b.dtype(), burn::tensor::DType::F32);
    }
}
