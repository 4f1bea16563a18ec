//! Step-for-step parity with PyTorch + PEFT (llm.c style): `fixtures/parity/make_parity.py`
//! trains the tiny golden NVILA with PEFT LoRA from the same initial adapter on the same data,
//! order, schedule, accumulation and clipping (torch 2.15, transformers 5.24, peft 0.21.2), and
//! records per-step loss, grad norm and lr, and the final adapter. The Rust trainer must match:
//! losses ≤ 1e-3 relative, final adapter ≤ 1e-3 relative (the bar); in f32 on CPU it is
//! far closer, and the test reports how close.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use trainer::config::TrainConfig;
use trainer::run::{RunOptions, RunOutcome, train};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// `name → values` of a safetensors file of f32 tensors.
fn tensors(file: &Path) -> HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, values)
        })
        .collect()
}

/// The fixture's registry names its files relative to itself (as VILA's YAML relative to the
/// working directory would); write the same entry with absolute paths.
fn registry_file(dir: &Path) -> PathBuf {
    let data = fixtures().join("dataset");
    let mut registry = registry::Registry::new();
    registry.upsert(
        "parity",
        registry::DatasetEntry::llava(data.join("parity.json"), data.clone()),
    );
    let path = dir.join("registry.yaml");
    registry.save(&path).unwrap();
    path
}

/// Runs the trainer as `reference` (a `reference.json` of `make_parity.py`) describes, from the
/// fixture's initial adapter, and checks loss, grad norm and lr of every step against it.
/// Returns the output folder and the worst relative loss and grad-norm differences.
fn run_and_compare_steps(reference: &Value) -> (tempfile::TempDir, u64, f64, f64) {
    let config = &reference["config"];
    let out = tempfile::tempdir().unwrap();
    let param = |k: &str| -> String {
        match &config[k] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    };
    let overrides: Vec<(String, String)> = [
        (
            "model_path",
            workspace().join(param("model_path")).display().to_string(),
        ),
        ("registry", registry_file(out.path()).display().to_string()),
        ("data_mixture", param("data_mixture")),
        ("output_dir", out.path().join("run").display().to_string()),
        ("device", "cpu".into()),
        ("dtype", "f32".into()),
        (
            "per_device_train_batch_size",
            param("per_device_train_batch_size"),
        ),
        ("global_train_batch_size", param("global_train_batch_size")),
        ("max_steps", param("max_steps")),
        ("learning_rate", param("learning_rate")),
        ("weight_decay", param("weight_decay")),
        ("warmup_ratio", param("warmup_ratio")),
        ("max_grad_norm", param("max_grad_norm")),
        ("seed", param("seed")),
        ("image_aspect_ratio", param("image_aspect_ratio")),
        ("lora_enable", "true".into()),
        ("lora_llm", "true".into()),
        ("lora_r", param("lora_r")),
        ("lora_alpha", param("lora_alpha")),
        ("lora_dropout", param("lora_dropout")),
        ("tune_mm_projector", param("tune_mm_projector")),
        ("tune_vision_tower", param("tune_vision_tower")),
        ("lora_vt", param("lora_vt")),
        ("save_steps", param("max_steps")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let cfg = TrainConfig::resolve(None, &HashMap::new(), &overrides).unwrap();
    let options = RunOptions {
        init_adapter: Some(fixtures().join(param("init_adapter"))),
        progress: Some(trainer::metrics::ProgressMode::Hidden),
        ..RunOptions::default()
    };
    let outcome = train(&cfg, &options).unwrap();
    let RunOutcome::Finished { steps, .. } = outcome else {
        panic!("run did not finish: {outcome:?}");
    };
    let want = reference["steps"].as_array().unwrap();
    assert_eq!(steps as usize, want.len());

    let got = trainer::metrics::read_metrics(&out.path().join("run/metrics.jsonl")).unwrap();
    let (mut worst_loss, mut worst_norm) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        let step = w["step"].as_u64().unwrap();
        assert_eq!(g.step, step);
        let (loss, norm, lr) = (
            w["loss"].as_f64().unwrap(),
            w["grad_norm"].as_f64().unwrap(),
            w["learning_rate"].as_f64().unwrap(),
        );
        worst_loss = worst_loss.max(rel(g.loss, loss));
        worst_norm = worst_norm.max(rel(g.grad_norm, norm));
        assert!(
            rel(g.loss, loss) <= 1e-3,
            "step {step}: loss {} vs PEFT {loss}",
            g.loss
        );
        assert!(
            rel(g.grad_norm, norm) <= 1e-3,
            "step {step}: grad norm {} vs {norm}",
            g.grad_norm
        );
        assert!(
            (g.learning_rate - lr).abs() <= 1e-12,
            "step {step}: lr {} vs {lr}",
            g.learning_rate
        );
    }
    (out, steps, worst_loss, worst_norm)
}

/// The worst of max |ours − theirs| / max |theirs| over the tensors of two safetensors files
/// with the same keys (f32).
fn worst_tensor_rel(ours: &Path, theirs: &Path) -> f64 {
    worst_tensor_rel_except(ours, theirs, &[])
}

/// As [`worst_tensor_rel`], where `theirs` may also hold the keys `only_theirs`.
fn worst_tensor_rel_except(ours: &Path, theirs: &Path, only_theirs: &[String]) -> f64 {
    let (ours, mut theirs) = (tensors(ours), tensors(theirs));
    for key in only_theirs {
        assert!(
            theirs.remove(key).is_some(),
            "{key} is not in the reference"
        );
    }
    assert_eq!(
        ours.keys().collect::<std::collections::BTreeSet<_>>(),
        theirs.keys().collect::<std::collections::BTreeSet<_>>()
    );
    let mut worst = 0f64;
    for (name, want) in &theirs {
        let got = &ours[name];
        assert_eq!(got.len(), want.len(), "{name}");
        let max_ref = want.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        let max_diff = got
            .iter()
            .zip(want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs())) as f64;
        let r = max_diff / max_ref.max(1e-12);
        worst = worst.max(r);
        assert!(r <= 1e-3, "{name}: max rel {r}");
    }
    worst
}

#[test]
fn ten_steps_match_pytorch_peft() {
    let reference = reference();
    let (out, steps, worst_loss, worst_norm) = run_and_compare_steps(&reference);
    let worst_adapter = worst_tensor_rel(
        &out.path().join("run/adapter_model.safetensors"),
        &fixtures().join("final_adapter/adapter_model.safetensors"),
    );
    // Nothing but the adapter trains: VILA's non-LoRA trainables file is empty.
    assert!(tensors(&out.path().join("run/non_lora_trainables.safetensors")).is_empty());
    // The adapter file is the one committed as `rust_adapter/`, which Python PEFT loaded
    // (`make_parity.py --verify-rust`) to make the reference of infer-cli's interop test.
    let bytes = |d: PathBuf| std::fs::read(d.join("adapter_model.safetensors")).unwrap();
    assert!(
        bytes(out.path().join("run")) == bytes(fixtures().join("rust_adapter")),
        "the trained adapter differs from the committed rust_adapter/"
    );
    eprintln!(
        "parity vs PyTorch+PEFT over {steps} steps: loss ≤ {worst_loss:.2e}, grad norm ≤ \
         {worst_norm:.2e}, final adapter ≤ {worst_adapter:.2e} (relative)"
    );
}

/// The same run with `tune_mm_projector` (`make_parity.py --variant projector`): the projector
/// trains in full beside the adapter, in VILA's decay groups, its gradient clipped with the
/// adapter's; losses, grad norms, the final adapter and the final projector tensors
/// (`non_lora_trainables.safetensors`, VILA's keys) match PyTorch + PEFT.
#[test]
fn ten_steps_with_tuned_projector_match_pytorch_peft() {
    let text = std::fs::read_to_string(fixtures().join("projector/reference.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let (out, steps, worst_loss, worst_norm) = run_and_compare_steps(&reference);
    let theirs = fixtures().join("projector/final_adapter");
    let worst_adapter = worst_tensor_rel(
        &out.path().join("run/adapter_model.safetensors"),
        &theirs.join("adapter_model.safetensors"),
    );
    let worst_projector = worst_tensor_rel(
        &out.path().join("run/non_lora_trainables.safetensors"),
        &theirs.join("non_lora_trainables.safetensors"),
    );
    // The projector really moved: its final tensors differ from the checkpoint's.
    let trained = tensors(&out.path().join("run/non_lora_trainables.safetensors"));
    let base =
        tensors(&workspace().join("fixtures/golden/tiny-nvila/mm_projector/model.safetensors"));
    let key = "base_model.model.mm_projector.layers.7.weight";
    let moved = trained[key]
        .iter()
        .zip(&base["layers.7.weight"])
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(moved > 1e-4, "the projector did not train ({moved})");
    // The files are the ones committed as `projector/rust_adapter/`, which Python loaded as VILA
    // does (`make_parity.py --verify-rust`) for infer-cli's interop test.
    assert_committed(&out.path().join("run"), "projector");
    eprintln!(
        "tune_mm_projector parity over {steps} steps: loss ≤ {worst_loss:.2e}, grad norm ≤ \
         {worst_norm:.2e}, adapter ≤ {worst_adapter:.2e}, projector ≤ {worst_projector:.2e} \
         (relative)"
    );
}

/// The same run with `tune_vision_tower` (`make_parity.py --variant vision`): the tower trains in
/// full, its gradient passing through the frozen projector; losses, grad norms, the adapter and
/// the tower's tensors (VILA's keys, `vision_tower.vision_tower.vision_model.…`) match PyTorch +
/// PEFT. The tower is cut at the selected layer, so the reference's tensors that get no gradient
/// (the last layer, `post_layernorm`; VILA saves them unchanged) are not in our file.
#[test]
fn ten_steps_with_tuned_vision_tower_match_pytorch_peft() {
    let text = std::fs::read_to_string(fixtures().join("vision/reference.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let (out, steps, worst_loss, worst_norm) = run_and_compare_steps(&reference);
    let theirs = fixtures().join("vision/final_adapter");
    let worst_adapter = worst_tensor_rel(
        &out.path().join("run/adapter_model.safetensors"),
        &theirs.join("adapter_model.safetensors"),
    );
    let untouched = without_gradient(&reference);
    assert!(!untouched.is_empty());
    let worst_tower = worst_tensor_rel_except(
        &out.path().join("run/non_lora_trainables.safetensors"),
        &theirs.join("non_lora_trainables.safetensors"),
        &untouched,
    );
    // The files are the ones committed as `vision/rust_adapter/` (Python-verified, as above).
    assert_committed(&out.path().join("run"), "vision");
    eprintln!(
        "tune_vision_tower parity over {steps} steps: loss ≤ {worst_loss:.2e}, grad norm ≤ \
         {worst_norm:.2e}, adapter ≤ {worst_adapter:.2e}, tower ≤ {worst_tower:.2e} (relative)"
    );
}

/// The run's adapter and non-LoRA files are bit-equal to the committed `<variant>/rust_adapter/`.
fn assert_committed(run: &Path, variant: &str) {
    let committed = fixtures().join(variant).join("rust_adapter");
    for name in [
        "adapter_model.safetensors",
        "non_lora_trainables.safetensors",
    ] {
        let bytes = |d: &Path| std::fs::read(d.join(name)).unwrap();
        assert!(
            bytes(run) == bytes(&committed),
            "{name} differs from the committed {variant}/rust_adapter/"
        );
    }
}

/// The same run with `lora_vt` (`make_parity.py --variant lora_vt`): LoRA on the tower's linears
/// too, from PEFT's initial factors (`lora_vt/init_adapter`, tower names as VILA's); the tower's
/// factors train through the LLM's input gradient. Losses, grad norms and the final adapter
/// match PyTorch + PEFT; the reference's factors of the tower layer after the cut (no gradient,
/// unchanged) are not in ours.
#[test]
fn ten_steps_with_lora_on_the_vision_tower_match_pytorch_peft() {
    let text = std::fs::read_to_string(fixtures().join("lora_vt/reference.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let (out, steps, worst_loss, worst_norm) = run_and_compare_steps(&reference);
    let untouched = without_gradient(&reference);
    assert_eq!(untouched.len(), 12, "{untouched:?}");
    let worst_adapter = worst_tensor_rel_except(
        &out.path().join("run/adapter_model.safetensors"),
        &fixtures().join("lora_vt/final_adapter/adapter_model.safetensors"),
        &untouched,
    );
    let ours = tensors(&out.path().join("run/adapter_model.safetensors"));
    assert!(
        ours.keys()
            .any(|k| k.contains("vision_model.encoder.layers.1.mlp.fc2.lora_B"))
    );
    // The adapter is the one committed as `lora_vt/rust_adapter/` (Python-verified).
    let bytes = |d: PathBuf| std::fs::read(d.join("adapter_model.safetensors")).unwrap();
    assert!(
        bytes(out.path().join("run")) == bytes(fixtures().join("lora_vt/rust_adapter")),
        "the adapter differs from the committed lora_vt/rust_adapter/"
    );
    eprintln!(
        "lora_vt parity over {steps} steps: loss ≤ {worst_loss:.2e}, grad norm ≤ \
         {worst_norm:.2e}, adapter ≤ {worst_adapter:.2e} (relative)"
    );
}

/// The reference's tensors that got no gradient (the tower layer after the cut).
fn without_gradient(reference: &Value) -> Vec<String> {
    reference["tuned_tensors"]["without_gradient"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}
