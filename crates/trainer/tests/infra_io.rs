//! Files and parameters: config layering and every config error, checkpoint save / discovery /
//! rotation with corruption and disk-full fault injection, the metrics file across resumes, the
//! loss-curve PNG and `trainer_state.json` on disk.

use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trainer::checkpoint::{
    CheckpointError, CheckpointFile, CheckpointManager, Defect, FailAfter, LATEST_NAME,
    MANIFEST_NAME, NamedTensor, is_finished, read_safetensors,
};
use trainer::config::{ConfigError, DeviceSpec, Dtype, ParameterArgs, Source, TrainConfig};
use trainer::metrics::{MetricsRecord, MetricsWriter, read_metrics};
use trainer::plot;
use trainer::state::{LogEntry, TrainerState};

// ------------------------------------------------------------------------------------------------
// Config
// ------------------------------------------------------------------------------------------------

fn team_yaml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/team.yaml")
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The four parameters the binary's command line always carries.
fn run_flags() -> Vec<(String, String)> {
    kv(&[
        ("model-path", "/models/NVILA-Lite-8B"),
        ("registry", "registry.yaml"),
        ("data-mixture", "wts_train"),
        ("output-dir", "runs/x"),
    ])
}

fn with(mut base: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    base.extend(kv(extra));
    base
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn team_recipe_resolves() {
    let c = TrainConfig::resolve(Some(&team_yaml()), &HashMap::new(), &run_flags()).unwrap();
    assert!(c.lora_enable && c.lora_llm && !c.lora_vt);
    assert_eq!((c.lora_r, c.lora_alpha), (16, 32));
    assert_eq!(c.learning_rate, 1e-4);
    assert_eq!(c.num_train_epochs, 1.0);
    assert_eq!(c.model_max_length, 4096);
    assert_eq!(c.dtype, Dtype::Bf16);
    assert_eq!(c.device, vec![DeviceSpec::Cpu]);
    assert_eq!(
        (
            c.global_train_batch_size,
            c.per_device_train_batch_size,
            c.gradient_accumulation_steps
        ),
        (2, 1, 2)
    );
    assert_eq!(c.origin("gradient_accumulation_steps"), Source::Derived);
    assert_eq!(c.origin("lora_r"), Source::File(team_yaml()));
    assert_eq!(c.adamw().eps, 1e-8);

    // Two GPUs: the same global batch needs no accumulation.
    let c = TrainConfig::resolve(
        Some(&team_yaml()),
        &HashMap::new(),
        &with(run_flags(), &[("device", "cuda:0,cuda:1")]),
    )
    .unwrap();
    assert_eq!(c.world_size(), 2);
    assert_eq!(c.gradient_accumulation_steps, 1);
}

#[test]
fn layers_override_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "c.yaml",
        "data_mixture: from_file\nglobal_train_batch_size: 2\nlora_enable: true\nlora_llm: true\nseed: 1\n",
    );
    let base = kv(&[("model_path", "m"), ("registry", "r"), ("output_dir", "o")]);
    // File only.
    let c = TrainConfig::resolve(Some(&file), &HashMap::new(), &base).unwrap();
    assert_eq!(
        (c.data_mixture.as_str(), c.global_train_batch_size, c.seed),
        ("from_file", 2, 1)
    );
    // Environment beats the file.
    let vars = env(&[
        ("DATA_MIXTURE", "from_env"),
        ("GLOBAL_TRAIN_BATCH_SIZE", "4"),
        ("UNRELATED", "x"),
    ]);
    let c = TrainConfig::resolve(Some(&file), &vars, &base).unwrap();
    assert_eq!(
        (c.data_mixture.as_str(), c.global_train_batch_size),
        ("from_env", 4)
    );
    assert_eq!(c.gradient_accumulation_steps, 4);
    assert_eq!(
        c.origin("global_train_batch_size"),
        Source::Env("GLOBAL_TRAIN_BATCH_SIZE")
    );
    // Flags beat the environment.
    let c = TrainConfig::resolve(
        Some(&file),
        &vars,
        &with(
            base.clone(),
            &[
                ("data-mixture", "from_flag"),
                ("global-train-batch-size", "6"),
                ("seed", "7"),
            ],
        ),
    )
    .unwrap();
    assert_eq!(
        (c.data_mixture.as_str(), c.global_train_batch_size, c.seed),
        ("from_flag", 6, 7)
    );
    assert_eq!(c.origin("seed"), Source::Flag("seed"));
    // An empty variable counts as unset (bash `${VAR:-default}`).
    let c = TrainConfig::resolve(Some(&file), &env(&[("DATA_MIXTURE", "")]), &base).unwrap();
    assert_eq!(c.data_mixture, "from_file");
    // VILA's direction: accumulation steps given, per-device batch derived.
    let vars = env(&[
        ("GLOBAL_TRAIN_BATCH_SIZE", "8"),
        ("GRADIENT_ACCUMULATION_STEPS", "2"),
    ]);
    let c = TrainConfig::resolve(
        Some(&file),
        &vars,
        &with(base, &[("device", "cuda:0,cuda:1")]),
    )
    .unwrap();
    assert_eq!(
        (c.per_device_train_batch_size, c.gradient_accumulation_steps),
        (2, 2)
    );
}

#[test]
fn json_config_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let c = TrainConfig::resolve(Some(&team_yaml()), &HashMap::new(), &run_flags()).unwrap();
    let saved = write_file(dir.path(), "train_config.json", &c.to_json_pretty());
    let again = TrainConfig::resolve(Some(&saved), &HashMap::new(), &[]).unwrap();
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&c).unwrap()
    );
    let text = c.to_json_pretty();
    assert!(
        text.contains("\"device\": \"cpu\"") && text.contains("\"dtype\": \"bf16\""),
        "{text}"
    );
}

#[test]
fn clap_flags_feed_resolve() {
    use clap::{Args, Command, FromArgMatches};
    let cmd = ParameterArgs::augment_args(Command::new("trainer"));
    let team = team_yaml();
    let argv = [
        "trainer",
        "--config",
        team.to_str().unwrap(),
        "--model-path",
        "m",
        "--registry",
        "r.yaml",
        "--data-mixture",
        "wts",
        "--output-dir",
        "o",
        "--lora-r",
        "8",
        "--lora-vt",
    ];
    let matches = cmd.try_get_matches_from(argv).unwrap();
    let args = ParameterArgs::from_arg_matches(&matches).unwrap();
    let c = TrainConfig::resolve(args.config.as_deref(), &HashMap::new(), &args.overrides).unwrap();
    assert_eq!(c.lora_r, 8);
    assert!(c.lora_vt);
}

#[track_caller]
fn resolve_err(
    file: Option<&Path>,
    vars: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> (ConfigError, String) {
    let base = with(
        run_flags(),
        &[("lora-enable", "true"), ("lora-llm", "true")],
    );
    let err = TrainConfig::resolve(file, &env(vars), &with(base, extra)).unwrap_err();
    let text = err.to_string();
    (err, text)
}

#[test]
fn unknown_config_key_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "bad.yaml", "lora_r: 16\nlora-alpha: 32\n");
    let (err, text) = resolve_err(Some(&file), &[], &[]);
    assert!(
        matches!(err, ConfigError::UnknownKey { ref key, .. } if key == "lora-alpha"),
        "{err:?}"
    );
    assert!(
        text.contains("bad.yaml") && text.contains("lora-alpha") && text.contains("lora_alpha"),
        "{text}"
    );

    let file = write_file(dir.path(), "bad.json", "{\"totally_unknown\": 1}");
    let (_, text) = resolve_err(Some(&file), &[], &[]);
    assert!(
        text.contains("bad.json") && text.contains("totally_unknown"),
        "{text}"
    );
}

#[test]
fn bad_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("c.toml", "lora_r = 16", "must end in"),
        ("c.yaml", "lora_r: [unclosed", "invalid YAML"),
        ("c.json", "{\"lora_r\": }", "invalid JSON"),
        ("c.yaml", "- just\n- a list\n", "mapping"),
        ("c.yaml", "lora_r: sixteen\n", "lora_r"),
        ("c.yaml", "max_steps: 2.5\n", "max_steps"),
    ];
    for (name, text, needle) in cases {
        let file = write_file(dir.path(), name, text);
        let (_, message) = resolve_err(Some(&file), &[], &[]);
        assert!(
            message.contains(needle) && message.contains(name),
            "{name}: {message}"
        );
    }
    let (err, _) = resolve_err(Some(&dir.path().join("missing.yaml")), &[], &[]);
    assert!(matches!(err, ConfigError::ReadFile { .. }));
}

#[test]
fn gas_not_divisible_names_the_numbers() {
    let (err, text) = resolve_err(
        None,
        &[("GLOBAL_TRAIN_BATCH_SIZE", "3")],
        &[("device", "cuda:0,cuda:1")],
    );
    assert!(matches!(
        err,
        ConfigError::GasNotDivisible {
            global: 3,
            world_size: 2,
            per_device: 1,
            product: 2,
            ..
        }
    ));
    assert!(
        text.contains("3")
            && text.contains("GLOBAL_TRAIN_BATCH_SIZE")
            && text.contains("world_size 2"),
        "{text}"
    );

    let (err, _) = resolve_err(
        None,
        &[],
        &[
            ("global-train-batch-size", "6"),
            ("per-device-train-batch-size", "4"),
        ],
    );
    assert!(
        matches!(
            err,
            ConfigError::GasNotDivisible {
                global: 6,
                product: 4,
                ..
            }
        ),
        "{err:?}"
    );

    let (err, text) = resolve_err(
        None,
        &[
            ("GLOBAL_TRAIN_BATCH_SIZE", "6"),
            ("GRADIENT_ACCUMULATION_STEPS", "4"),
        ],
        &[],
    );
    assert!(
        matches!(
            err,
            ConfigError::PerDeviceNotDivisible {
                global: 6,
                gas: 4,
                ..
            }
        ),
        "{text}"
    );

    let (err, _) = resolve_err(
        None,
        &[],
        &[
            ("global-train-batch-size", "8"),
            ("per-device-train-batch-size", "2"),
            ("gradient-accumulation-steps", "3"),
        ],
    );
    assert!(
        matches!(
            err,
            ConfigError::BatchMismatch {
                global: 8,
                product: 6,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn validation_errors_name_parameter_and_source() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("lora-r", "0")], "lora_r"),
        (&[("learning-rate", "0")], "learning_rate"),
        (&[("learning-rate", "-1e-4")], "learning_rate"),
        (&[("learning-rate", "NaN")], "learning_rate"),
        (&[("learning-rate", "inf")], "learning_rate"),
        (&[("warmup-ratio", "1.5")], "warmup_ratio"),
        (&[("warmup-ratio", "-0.1")], "warmup_ratio"),
        (
            &[("per-device-train-batch-size", "0")],
            "per_device_train_batch_size",
        ),
        (
            &[("gradient-accumulation-steps", "0")],
            "gradient_accumulation_steps",
        ),
        (
            &[("global-train-batch-size", "0")],
            "global_train_batch_size",
        ),
        (&[("num-train-epochs", "0")], "num_train_epochs"),
        (&[("max-steps", "0")], "max_steps"),
        (&[("lora-dropout", "1.0")], "lora_dropout"),
        (&[("lora-alpha", "0")], "lora_alpha"),
        (&[("weight-decay", "-0.1")], "weight_decay"),
        (&[("adam-beta2", "1.0")], "adam_beta2"),
        (&[("save-steps", "0")], "save_steps"),
        (&[("save-total-limit", "0")], "save_total_limit"),
        (&[("model-max-length", "0")], "model_max_length"),
        (&[("device", "cuda:0,cuda:0")], "device"),
        (&[("lora-llm", "false")], "lora_enable"),
        (&[("lora-enable", "false")], "lora_enable"),
    ];
    for (flags, field) in cases {
        let (err, text) = resolve_err(None, &[], flags);
        assert!(text.contains(field), "{flags:?}: {text}");
        assert!(
            text.contains("from --"),
            "{flags:?}: the source is named: {text}"
        );
        assert!(!matches!(err, ConfigError::Missing { .. }));
    }
    let (err, text) = resolve_err(None, &[], &[("lora-r", "0")]);
    assert!(matches!(
        err,
        ConfigError::Invalid {
            field: "lora_r",
            ..
        }
    ));
    assert!(text.contains("--lora-r"), "{text}");

    // Type errors, unknown flags, missing parameters.
    let (err, text) = resolve_err(None, &[], &[("lora-r", "sixteen")]);
    assert!(
        matches!(
            err,
            ConfigError::InvalidValue {
                field: "lora_r",
                ..
            }
        ) && text.contains("sixteen")
    );
    let (err, _) = resolve_err(None, &[], &[("device", "tpu:0")]);
    assert!(matches!(
        err,
        ConfigError::InvalidValue {
            field: "device",
            ..
        }
    ));
    let (err, text) = resolve_err(None, &[], &[("lora-rank", "16")]);
    assert!(
        matches!(err, ConfigError::UnknownParameter { .. }) && text.contains("lora-rank"),
        "{text}"
    );
    let (err, _) = resolve_err(None, &[("GLOBAL_TRAIN_BATCH_SIZE", "two")], &[]);
    assert!(matches!(
        err,
        ConfigError::InvalidValue {
            origin: Source::Env("GLOBAL_TRAIN_BATCH_SIZE"),
            ..
        }
    ));
    let err = TrainConfig::resolve(None, &HashMap::new(), &kv(&[("model-path", "m")])).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Missing {
                field: "registry",
                ..
            }
        ),
        "{err}"
    );
}

// ------------------------------------------------------------------------------------------------
// Checkpoints
// ------------------------------------------------------------------------------------------------

/// A checkpoint's files: a sizeable "adapter", optimizer-like tensors, trainer state, and a
/// streamed RNG/cursor JSON.
fn checkpoint_files(step: u64) -> Vec<CheckpointFile> {
    let adapter: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ step as u8)
        .collect();
    let tensors = vec![
        NamedTensor::new("w.exp_avg", vec![2, 3], vec![step as f32; 6]).unwrap(),
        NamedTensor::new("w.step", vec![], vec![step as f32]).unwrap(),
    ];
    let mut state = TrainerState::new(100, 1, 10, 1, 1);
    state.global_step = step;
    state
        .log_history
        .push(LogEntry::train_step(step, 0.1, 1.5, 1e-4, Some(0.3)));
    vec![
        CheckpointFile::bytes("adapter_model.safetensors", adapter),
        CheckpointFile::safetensors("optimizer.safetensors", &tensors, Some(("format", "pt")))
            .unwrap(),
        state.checkpoint_file(),
        CheckpointFile::writer("trainer_rng_state.json", move |w| {
            write!(w, "{{\"seed\": 42, \"cursor\": {step}}}")
        }),
    ]
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn latest(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(LATEST_NAME))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn save_discover_and_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let manager = CheckpointManager::new(&out, Some(2));
    assert_eq!(manager.discover().unwrap().resume_from, None);
    for step in [10, 20, 30] {
        let saved = manager.save(step, checkpoint_files(step)).unwrap();
        assert_eq!(saved.checkpoint.step, step);
        assert_eq!(latest(&out), format!("checkpoint-{step}"));
        if step == 30 {
            assert_eq!(saved.removed, vec![out.join("checkpoint-10")]);
        }
    }
    assert_eq!(
        dir_names(&out),
        vec!["checkpoint-20", "checkpoint-30", "latest"]
    );
    let found = manager.discover().unwrap();
    let resume = found.resume_from.unwrap();
    assert_eq!(resume.step, 30);
    assert!(found.rejected.is_empty() && found.removed_staging.is_empty());
    assert_eq!(found.latest.as_deref(), Some("checkpoint-30"));
    let names: Vec<&str> = resume
        .manifest
        .files
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "adapter_model.safetensors",
            "optimizer.safetensors",
            "trainer_state.json",
            "trainer_rng_state.json"
        ]
    );
    // The files read back.
    let tensors = read_safetensors(&resume.path.join("optimizer.safetensors")).unwrap();
    assert_eq!(tensors.get("w.step").unwrap().values, vec![30.0]);
    let state = TrainerState::load(&resume.path.join("trainer_state.json")).unwrap();
    assert_eq!(state.global_step, 30);
    assert_eq!(
        std::fs::read_to_string(resume.path.join("trainer_rng_state.json")).unwrap(),
        "{\"seed\": 42, \"cursor\": 30}"
    );

    // A limit of 1 keeps only the newest; no limit keeps everything.
    let one = CheckpointManager::new(dir.path().join("one"), Some(1));
    for step in 1..=3 {
        one.save(step, checkpoint_files(step)).unwrap();
    }
    assert_eq!(
        dir_names(&dir.path().join("one")),
        vec!["checkpoint-3", "latest"]
    );
    let all = CheckpointManager::new(dir.path().join("all"), None);
    for step in 1..=3 {
        all.save(step, checkpoint_files(step)).unwrap();
    }
    assert_eq!(dir_names(&dir.path().join("all")).len(), 4);
}

/// Three checkpoints, then `damage` applied to the newest; discovery must fall back to 20.
fn fallback_after(damage: impl FnOnce(&Path)) -> trainer::checkpoint::Discovery {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path(), None);
    for step in [10, 20, 30] {
        manager.save(step, checkpoint_files(step)).unwrap();
    }
    damage(&dir.path().join("checkpoint-30"));
    let found = manager.discover().unwrap();
    assert_eq!(found.resume_from.as_ref().map(|c| c.step), Some(20));
    assert_eq!(found.rejected.len(), 1);
    assert_eq!(found.rejected[0].step, 30);
    assert_eq!(found.rejected[0].path, dir.path().join("checkpoint-30"));
    found
}

#[test]
fn truncated_file_falls_back_to_previous_checkpoint() {
    let found = fallback_after(|ckpt| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(ckpt.join("adapter_model.safetensors"))
            .unwrap();
        file.set_len(1000).unwrap();
    });
    assert!(
        matches!(&found.rejected[0].defect, Defect::SizeMismatch { name, expected: 20_000, actual: 1000 } if name == "adapter_model.safetensors"),
        "{:?}",
        found.rejected[0].defect
    );
    assert!(found.rejected[0].defect.to_string().contains("truncated"));
}

#[test]
fn flipped_byte_falls_back_to_previous_checkpoint() {
    let found = fallback_after(|ckpt| {
        let path = ckpt.join("trainer_state.json");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
    });
    assert!(
        matches!(&found.rejected[0].defect, Defect::ChecksumMismatch { name, .. } if name == "trainer_state.json"),
        "{:?}",
        found.rejected[0].defect
    );
}

#[test]
fn missing_manifest_or_file_falls_back_to_previous_checkpoint() {
    let found = fallback_after(|ckpt| std::fs::remove_file(ckpt.join(MANIFEST_NAME)).unwrap());
    assert_eq!(found.rejected[0].defect, Defect::MissingManifest);
    let found =
        fallback_after(|ckpt| std::fs::remove_file(ckpt.join("optimizer.safetensors")).unwrap());
    assert_eq!(
        found.rejected[0].defect,
        Defect::MissingFile("optimizer.safetensors".into())
    );
    let found =
        fallback_after(|ckpt| std::fs::write(ckpt.join(MANIFEST_NAME), "{not json").unwrap());
    assert!(matches!(found.rejected[0].defect, Defect::BadManifest(_)));
}

#[test]
fn every_checkpoint_corrupt_means_start_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path(), None);
    manager.save(5, checkpoint_files(5)).unwrap();
    std::fs::remove_file(dir.path().join("checkpoint-5").join(MANIFEST_NAME)).unwrap();
    let found = manager.discover().unwrap();
    assert_eq!(found.resume_from, None);
    assert_eq!(found.rejected.len(), 1);
}

#[test]
fn leftover_staging_dirs_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path(), None);
    manager.save(10, checkpoint_files(10)).unwrap();
    let stale = dir.path().join("tmp-checkpoint-20");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("adapter_model.safetensors"), b"half").unwrap();
    let found = manager.discover().unwrap();
    assert_eq!(found.removed_staging, vec![stale.clone()]);
    assert!(!stale.exists());
    assert_eq!(found.resume_from.unwrap().step, 10);
}

#[test]
fn finished_run_is_detected_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path(), None);
    manager.save(10, checkpoint_files(10)).unwrap();
    std::fs::create_dir(dir.path().join("tmp-checkpoint-11")).unwrap();
    assert!(!is_finished(dir.path()));
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    assert!(is_finished(dir.path()));
    let found = manager.discover().unwrap();
    assert!(found.finished);
    assert_eq!(found.resume_from, None);
    assert!(
        dir.path().join("tmp-checkpoint-11").exists(),
        "a finished run is not touched"
    );
}

#[test]
fn disk_full_while_saving_keeps_previous_checkpoint() {
    // Size of one full save (files + manifest + latest), to place failures everywhere in it.
    let probe = tempfile::tempdir().unwrap();
    let sink = FailAfter::new(u64::MAX, ErrorKind::StorageFull);
    CheckpointManager::new(probe.path(), None)
        .with_sink(Arc::new(sink.clone()))
        .save(1, checkpoint_files(1))
        .unwrap();
    let total = u64::MAX - sink.remaining();
    assert!(total > 20_000);

    // Budgets around every file boundary (files in manifest order, then the manifest, then
    // `latest`), plus a sweep through the large file.
    let probe_manifest = CheckpointManager::new(probe.path(), None)
        .discover()
        .unwrap()
        .resume_from
        .unwrap()
        .manifest;
    let mut boundary = 0u64;
    let mut budgets: Vec<u64> = (0..total).step_by(4999).collect();
    for size in probe_manifest.files.iter().map(|f| f.size) {
        boundary += size;
        budgets.extend([boundary.saturating_sub(1), boundary, boundary + 1]);
    }
    budgets.extend([total - 10, total - 1]);
    let mut failures_by_file = std::collections::BTreeMap::<String, usize>::new();
    for budget in budgets {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        CheckpointManager::new(out, Some(1))
            .save(10, checkpoint_files(10))
            .unwrap();
        let manager = CheckpointManager::new(out, Some(1))
            .with_sink(Arc::new(FailAfter::new(budget, ErrorKind::StorageFull)));
        let err = manager.save(20, checkpoint_files(20)).unwrap_err();
        let CheckpointError::WriteFile { path, source } = &err else {
            panic!("budget {budget}: unexpected error {err}");
        };
        assert_eq!(source.kind(), ErrorKind::StorageFull);
        assert!(err.to_string().contains(&path.display().to_string()));
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        *failures_by_file.entry(file.clone()).or_default() += 1;

        // No staging folder or temporary file is left, the previous checkpoint is complete, and
        // `latest` names a complete checkpoint.
        let names = dir_names(out);
        assert!(
            names
                .iter()
                .all(|n| !n.starts_with("tmp-") && !n.ends_with(".tmp")),
            "{names:?}"
        );
        let found = CheckpointManager::new(out, None).discover().unwrap();
        assert!(found.removed_staging.is_empty());
        if file == LATEST_NAME {
            // The checkpoint itself was committed before `latest` failed; `latest` is the old one.
            assert_eq!(found.resume_from.unwrap().step, 20);
            assert_eq!(latest(out), "checkpoint-10");
            assert!(
                out.join("checkpoint-10").exists(),
                "rotation waits for a successful save"
            );
        } else {
            assert_eq!(
                found.resume_from.unwrap().step,
                10,
                "budget {budget} ({file})"
            );
            assert_eq!(names, vec!["checkpoint-10", "latest"]);
            assert_eq!(latest(out), "checkpoint-10");
        }
    }
    // Failures were injected into every file of the checkpoint, the manifest and `latest`.
    for file in [
        "adapter_model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
        "trainer_rng_state.json",
        MANIFEST_NAME,
        LATEST_NAME,
    ] {
        assert!(
            failures_by_file.contains_key(file),
            "no failure injected into {file}: {failures_by_file:?}"
        );
    }
}

#[test]
fn a_failing_writer_closure_aborts_the_save() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path(), None);
    manager.save(1, checkpoint_files(1)).unwrap();
    let mut files = checkpoint_files(2);
    files.push(CheckpointFile::writer("broken.bin", |_| {
        Err(std::io::Error::other("encoder failed"))
    }));
    let err = manager.save(2, files).unwrap_err();
    assert!(err.to_string().contains("broken.bin"), "{err}");
    assert_eq!(dir_names(dir.path()), vec!["checkpoint-1", "latest"]);
}

#[test]
fn resaving_a_step_replaces_a_defective_checkpoint_and_stale_ones_go() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path(), None);
    for step in [10, 20, 30] {
        manager.save(step, checkpoint_files(step)).unwrap();
    }
    // 20 and 30 corrupt: resume from 10, then the retrained 20 replaces the corrupt 20 and the
    // corrupt 30 (a future that is being redone) is removed.
    std::fs::remove_file(dir.path().join("checkpoint-20").join(MANIFEST_NAME)).unwrap();
    std::fs::write(
        dir.path().join("checkpoint-30").join("trainer_state.json"),
        "x",
    )
    .unwrap();
    assert_eq!(manager.discover().unwrap().resume_from.unwrap().step, 10);
    let saved = manager.save(20, checkpoint_files(20)).unwrap();
    assert!(
        saved.removed.contains(&dir.path().join("checkpoint-30")),
        "{:?}",
        saved.removed
    );
    assert_eq!(
        dir_names(dir.path()),
        vec!["checkpoint-10", "checkpoint-20", "latest"]
    );
    assert_eq!(manager.discover().unwrap().resume_from.unwrap().step, 20);
}

#[test]
fn bad_file_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path(), None);
    for name in ["../escape", "a/b", MANIFEST_NAME, ""] {
        let err = manager
            .save(1, vec![CheckpointFile::bytes(name, vec![1])])
            .unwrap_err();
        assert!(
            matches!(err, CheckpointError::InvalidName { .. }),
            "{name}: {err}"
        );
    }
    let err = manager
        .save(
            1,
            vec![
                CheckpointFile::bytes("a", vec![1]),
                CheckpointFile::bytes("a", vec![2]),
            ],
        )
        .unwrap_err();
    assert!(matches!(err, CheckpointError::InvalidName { .. }));
    assert!(!dir.path().join("checkpoint-1").exists());
}

// ------------------------------------------------------------------------------------------------
// Metrics, plot, trainer state on disk
// ------------------------------------------------------------------------------------------------

fn record(step: u64) -> MetricsRecord {
    MetricsRecord {
        step,
        epoch: step as f64 / 10.0,
        loss: 3.0 - step as f64 * 0.1,
        learning_rate: 1e-4,
        grad_norm: 0.7,
        tokens: step * 4096,
        tokens_per_s: 2000.0,
        elapsed_s: step as f64 * 2.0,
    }
}

#[test]
fn metrics_file_survives_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let mut writer = MetricsWriter::open(&path, 0).unwrap();
    for step in 1..=5 {
        writer.append(&record(step)).unwrap();
    }
    drop(writer);
    // A crash mid-line leaves a torn tail.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"step\": 6, \"epo")
        .unwrap();
    assert!(read_metrics(&path).is_err_and(|e| e.to_string().contains("line 6")));

    // Resume from checkpoint-3: steps 4.. are replayed.
    let mut writer = MetricsWriter::open(&path, 3).unwrap();
    for step in 4..=6 {
        writer.append(&record(step)).unwrap();
    }
    let steps: Vec<u64> = read_metrics(&path)
        .unwrap()
        .iter()
        .map(|r| r.step)
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(read_metrics(&path).unwrap()[3], record(4));

    // A fresh run (resume step 0) starts the file over.
    drop(writer);
    MetricsWriter::open(&path, 0).unwrap();
    assert!(read_metrics(&path).unwrap().is_empty());
}

#[test]
fn loss_curve_png_has_axes_and_curve() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loss.png");
    let points: Vec<(u64, f64)> = (1..=50)
        .map(|s| (s, 2.5 * (-(s as f64) / 15.0).exp() + 0.3))
        .collect();
    plot::write_loss_curve(&path, &points, 640, 400).unwrap();
    let image = image::open(&path).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (640, 400));
    let curve = image.pixels().filter(|p| **p == plot::CURVE).count();
    assert!(curve > 600, "{curve} curve pixels");
    let axis = image.pixels().filter(|p| **p == plot::AXIS).count();
    assert!(axis > 500, "{axis} axis/label pixels");
    // The curve starts top-left and ends bottom-right of the plot area.
    let (left_half_top, right_half_bottom) = image
        .enumerate_pixels()
        .filter(|(_, _, p)| **p == plot::CURVE)
        .fold((0, 0), |(a, b), (x, y, _)| {
            (
                a + usize::from(x < 320 && y < 200),
                b + usize::from(x >= 320 && y >= 200),
            )
        });
    assert!(left_half_top > 0 && right_half_bottom > 0);
    // The bottom-left corner of the plot area is on both axes.
    assert!(
        image
            .rows()
            .nth(400 - 37)
            .unwrap()
            .filter(|p| **p == plot::AXIS)
            .count()
            > 400,
        "x axis drawn"
    );
    assert!(!dir.path().join("loss.png.tmp").exists());
}

#[test]
fn trainer_state_file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trainer_state.json");
    let mut state = TrainerState::new(3, 1, 1, 1, 2);
    for step in 1..=3u64 {
        state.global_step = step;
        state.epoch = step as f64 / 3.0;
        state.log_history.push(LogEntry::train_step(
            step,
            state.epoch,
            1.0 / step as f64,
            1e-5 * step as f64,
            Some(0.25),
        ));
    }
    state.set_control_for_save(true);
    state.save(&path).unwrap();
    let back = TrainerState::load(&path).unwrap();
    assert_eq!(back, state);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\"learning_rate\": 1e-05,")
            && text.contains("\"should_training_stop\": true"),
        "{text}"
    );
    assert!(
        TrainerState::load(&dir.path().join("missing.json"))
            .is_err_and(|e| e.to_string().contains("missing.json"))
    );
}
