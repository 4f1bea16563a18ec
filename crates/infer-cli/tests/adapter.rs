//! `--adapter DIR` end to end: PEFT-format adapters for the tiny golden checkpoint
//! (`fixtures/golden/tiny-nvila`) are written here with the `lora` crate's writer, the built
//! `infer-cli` binary merges them at load, and its log-probs are checked against the same
//! factors applied unmerged (`LoraLinear` through `map_llm_projections`) in this process.
//! Every kind of bad adapter gives a non-zero exit and a message naming the problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use lora::{
    AdapterConfig, LoraError, LoraFactors, LoraLinear, Patterns, PeftAdapter, TargetModules,
    apply_non_lora_trainables, save_non_lora_trainables,
};
use nvila_model::NvilaModel;
use nvila_model::generate::GenerateOptions;
use nvila_model::processor::load_image;
use nvila_model::projector::Projector;
use nvila_model::text::Projection;
use serde_json::Value;

const PROMPT: &str = "What is shown?";
const RESPONSE: &str = "A small square.";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir() -> PathBuf {
    repo().join("fixtures/golden/tiny-nvila")
}

fn image() -> PathBuf {
    repo().join("crates/nvila-model/tests/fixtures/processor/images/square50.png")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infer-cli"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        out.status,
        text(&out.stderr)
    );
    out
}

/// Runs, requires a non-zero exit, no panic and nothing on stdout; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        text(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
    err
}

fn json(out: &Output) -> Value {
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected: {stdout:?}");
    serde_json::from_str(lines[0]).unwrap()
}

/// `(token_ids, logprobs)` of a `score` JSON object.
fn scores(v: &Value) -> (Vec<u32>, Vec<f32>) {
    let ids = v["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let lps = v["logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    (ids, lps)
}

fn score_args<'a>(model: &'a str, img: &'a str, adapter: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec![
        "score",
        "--model",
        model,
        "--image",
        img,
        "--prompt",
        PROMPT,
        "--response",
        RESPONSE,
    ];
    if let Some(a) = adapter {
        args.extend(["--adapter", a]);
    }
    args
}

fn generate_args<'a>(model: &'a str, img: &'a str, adapter: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec![
        "generate",
        "--model",
        model,
        "--image",
        img,
        "--prompt",
        PROMPT,
        "--max-new-tokens",
        "12",
        "--json",
    ];
    if let Some(a) = adapter {
        args.extend(["--adapter", a]);
    }
    args
}

fn cli_score(adapter: Option<&Path>) -> (Vec<u32>, Vec<f32>) {
    let (model, img) = (model_dir(), image());
    let adapter = adapter.map(|a| a.display().to_string());
    let (model, img) = (model.display().to_string(), img.display().to_string());
    scores(&json(&ok(&score_args(&model, &img, adapter.as_deref()))))
}

fn cli_generate(adapter: Option<&Path>) -> Vec<u32> {
    let (model, img) = (model_dir(), image());
    let adapter = adapter.map(|a| a.display().to_string());
    let (model, img) = (model.display().to_string(), img.display().to_string());
    let v = json(&ok(&generate_args(&model, &img, adapter.as_deref())));
    v["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

// ---------------------------------------------------------------------------------------------
// Writing adapters.

/// The tiny checkpoint's decoder projections: (name inside a layer, d_in, d_out). Hidden 64,
/// 4 query heads and 2 key/value heads of 16, intermediate 160.
const PROJECTIONS: [(&str, usize, usize); 7] = [
    ("self_attn.q_proj", 64, 64),
    ("self_attn.k_proj", 64, 32),
    ("self_attn.v_proj", 64, 32),
    ("self_attn.o_proj", 64, 64),
    ("mlp.gate_proj", 64, 160),
    ("mlp.up_proj", 64, 160),
    ("mlp.down_proj", 160, 64),
];

/// Rank of every adapter but `down_proj`, which `rank_pattern` gives rank 2.
const R: usize = 4;
const R_DOWN: usize = 2;
const ALPHA: f64 = 8.0;

/// Deterministic values in `[-scale, scale)` (a 64-bit LCG).
fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            (2.0 * unit - 1.0) * scale
        })
        .collect()
}

fn matrix(seed: u64, rows: usize, cols: usize, scale: f32) -> TensorData {
    TensorData::new(values(seed, rows * cols, scale), [rows, cols])
}

/// Random nonzero factors in PEFT's layout (`lora_A` `[r, in]`, `lora_B` `[out, r]`); B is all
/// zeros when `zero_b` (a fresh PEFT adapter).
fn factors(seed: u64, r: usize, d_in: usize, d_out: usize, zero_b: bool) -> LoraFactors {
    LoraFactors {
        lora_a: matrix(seed, r, d_in, 0.3),
        lora_b: if zero_b {
            TensorData::zeros::<f32, _>([d_out, r])
        } else {
            matrix(seed + 1000, d_out, r, 0.3)
        },
    }
}

/// Every decoder projection of both layers, VILA's default targets, under VILA's names.
fn all_modules(zero_b: bool) -> BTreeMap<String, LoraFactors> {
    let mut modules = BTreeMap::new();
    let mut seed = 1;
    for layer in 0..2 {
        for (name, d_in, d_out) in PROJECTIONS {
            let r = if name == "mlp.down_proj" { R_DOWN } else { R };
            let path = format!("llm.model.layers.{layer}.{name}");
            modules.insert(path, factors(seed, r, d_in, d_out, zero_b));
            seed += 1;
        }
    }
    modules
}

fn config() -> AdapterConfig {
    let mut config = AdapterConfig::new(
        R,
        ALPHA,
        TargetModules::Names(
            PROJECTIONS
                .iter()
                .map(|(n, _, _)| n.rsplit('.').next().unwrap().to_string())
                .collect(),
        ),
    );
    config.task_type = Some("CAUSAL_LM".into());
    config.rank_pattern = Patterns(vec![("down_proj".into(), R_DOWN)]);
    config.base_model_name_or_path = Some("tiny-nvila".into());
    config
}

/// Saves a PEFT adapter with the `lora` crate's writer into a fresh temporary folder.
fn save(config: AdapterConfig, modules: BTreeMap<String, LoraFactors>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    PeftAdapter::new(config, modules)
        .unwrap()
        .save(dir.path())
        .unwrap();
    dir
}

/// Overwrites `adapter_config.json` with `config` as is (the writer refuses unsupported
/// features, PEFT does not).
fn write_config(dir: &Path, config: &AdapterConfig) {
    std::fs::write(dir.join(lora::ADAPTER_CONFIG_FILE), config.to_json()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The reference: the same adapter, unmerged, in this process.

/// A decoder projection with or without an (unmerged) LoRA update. (The size difference of the
/// variants does not matter for 14 layers of a test model.)
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
enum Adapted {
    Plain(Linear),
    Lora(LoraLinear),
}

impl Projection for Adapted {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Adapted::Plain(linear) => linear.forward(x),
            Adapted::Lora(lora) => lora.forward(x),
        }
    }
}

#[derive(Module, Debug)]
struct ProjectorRoot {
    mm_projector: Projector,
}

/// The tiny model with the adapter in `dir` applied unmerged, and its projector trainables.
fn reference_model(dir: &Path) -> NvilaModel<Adapted> {
    let mut model = NvilaModel::from_checkpoint(&model_dir(), &Device::flex(), None).unwrap();
    let trainables = dir.join(lora::NON_LORA_TRAINABLES_FILE);
    if trainables.exists() {
        let tensors = lora::load_non_lora_trainables(&trainables).unwrap();
        let root = ProjectorRoot {
            mm_projector: model.mm_projector.clone(),
        };
        model.mm_projector = apply_non_lora_trainables(root, &tensors, &trainables)
            .unwrap()
            .mm_projector;
    }
    let mut adapter = PeftAdapter::load(dir).unwrap();
    let model = model
        .map_projections(|path, linear| -> Result<Adapted, LoraError> {
            let module = path.to_string();
            if adapter.modules.contains_key(&module) {
                Ok(Adapted::Lora(adapter.wrap(&module, linear)?))
            } else {
                Ok(Adapted::Plain(linear))
            }
        })
        .unwrap();
    adapter.finish().unwrap();
    model
}

fn reference_score(model: &NvilaModel<Adapted>) -> (Vec<u32>, Vec<f32>) {
    let img = load_image(&image()).unwrap();
    let out = model.score(PROMPT, &[img], RESPONSE, None).unwrap();
    (out.token_ids, out.logprobs)
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn adapter_changes_outputs_and_matches_the_unmerged_reference() {
    let dir = save(config(), all_modules(false));
    let (base_ids, base_lps) = cli_score(None);
    let (ids, lps) = cli_score(Some(dir.path()));
    assert_eq!(ids, base_ids, "the scored tokens do not depend on weights");
    let change = max_abs_diff(&lps, &base_lps);
    assert!(
        change > 1e-2,
        "the adapter barely changes log-probs: {change}"
    );

    // Merged in the binary == unmerged here, within 1e-5.
    let model = reference_model(dir.path());
    let (ref_ids, ref_lps) = reference_score(&model);
    assert_eq!(ids, ref_ids);
    let diff = max_abs_diff(&lps, &ref_lps);
    assert!(
        diff <= 1e-5,
        "merged vs unmerged log-probs differ by {diff}"
    );

    // generate merges the same adapter: its greedy answer is the unmerged model's, and not
    // the base model's.
    let generated = cli_generate(Some(dir.path()));
    let img = load_image(&image()).unwrap();
    let opts = GenerateOptions {
        max_new_tokens: 12,
        ..GenerateOptions::default()
    };
    let want = model
        .generate_detailed(PROMPT, &[img], &opts, &mut |_| {})
        .unwrap();
    assert_eq!(generated, want.token_ids);
    assert_ne!(
        generated,
        cli_generate(None),
        "the adapter changed no token"
    );
}

#[test]
fn zero_b_adapter_gives_exactly_the_base_logprobs() {
    let dir = save(config(), all_modules(true));
    let (base_ids, base_lps) = cli_score(None);
    let (ids, lps) = cli_score(Some(dir.path()));
    assert_eq!(ids, base_ids);
    assert_eq!(lps, base_lps, "W + 0 must be W bit for bit");
    assert_eq!(cli_generate(Some(dir.path())), cli_generate(None));
}

#[test]
fn adapter_on_some_modules_only_and_projector_trainables_are_applied() {
    // Layer 1's attention only.
    let modules: BTreeMap<String, LoraFactors> = all_modules(false)
        .into_iter()
        .filter(|(p, _)| p.starts_with("llm.model.layers.1.self_attn."))
        .collect();
    assert_eq!(modules.len(), 4);
    let dir = save(config(), modules);
    let (_, lora_only) = cli_score(Some(dir.path()));
    let (_, lora_ref) = reference_score(&reference_model(dir.path()));
    assert!(max_abs_diff(&lora_only, &lora_ref) <= 1e-5);

    // Tuned projector: the last linear (`layers.7`, torch layout [out, in]) and the second
    // LayerNorm (`layers.4`, 3·C = 96 wide), as VILA's tune_mm_projector saves them.
    let tensors = BTreeMap::from([
        (
            "base_model.model.mm_projector.layers.7.weight".to_string(),
            matrix(77, 64, 64, 0.2),
        ),
        (
            "base_model.model.mm_projector.layers.7.bias".to_string(),
            TensorData::new(values(78, 64, 0.2), [64]),
        ),
        (
            "base_model.model.mm_projector.layers.4.weight".to_string(),
            TensorData::new(values(79, 96, 1.0), [96]),
        ),
    ]);
    save_non_lora_trainables(&dir.path().join(lora::NON_LORA_TRAINABLES_FILE), &tensors).unwrap();
    let (_, with_projector) = cli_score(Some(dir.path()));
    let change = max_abs_diff(&with_projector, &lora_only);
    assert!(
        change > 1e-3,
        "the projector weights changed nothing: {change}"
    );
    let (_, reference) = reference_score(&reference_model(dir.path()));
    let diff = max_abs_diff(&with_projector, &reference);
    assert!(diff <= 1e-5, "{diff}");

    // Beside a safetensors copy, VILA's .bin is not read (a warning says which file is used).
    std::fs::write(dir.path().join(lora::NON_LORA_TRAINABLES_BIN), b"not read").unwrap();
    let (model, img) = (
        model_dir().display().to_string(),
        image().display().to_string(),
    );
    let adapter = dir.path().display().to_string();
    let out = ok(&score_args(&model, &img, Some(&adapter)));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("using non_lora_trainables.safetensors"),
        "{err}"
    );
    assert_eq!(scores(&json(&out)).1, with_projector);
}

#[test]
fn base_model_name_mismatch_only_warns() {
    let (model, img) = (
        model_dir().display().to_string(),
        image().display().to_string(),
    );
    let dir = save(config(), all_modules(false));
    let adapter = dir.path().display().to_string();
    let out = ok(&score_args(&model, &img, Some(&adapter)));
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );

    let mut other = config();
    other.base_model_name_or_path = Some("Qwen/Qwen2-7B-Instruct".into());
    write_config(dir.path(), &other);
    let out = ok(&score_args(&model, &img, Some(&adapter)));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning")
            && err.contains("base_model_name_or_path")
            && err.contains("Qwen2-7B-Instruct"),
        "{err}"
    );
    assert_eq!(scores(&json(&out)), cli_score(Some(dir.path())));
}

/// Runs both commands on `adapter` and requires each to fail with every needle in stderr.
fn refused(adapter: &Path, needles: &[&str]) {
    let (model, img) = (
        model_dir().display().to_string(),
        image().display().to_string(),
    );
    let a = adapter.display().to_string();
    for args in [
        score_args(&model, &img, Some(&a)),
        generate_args(&model, &img, Some(&a)),
    ] {
        let err = fails(&args);
        assert!(err.contains("--adapter"), "{args:?}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: no {needle:?} in {err}");
        }
    }
}

#[test]
fn missing_and_corrupt_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-adapter");
    refused(
        &missing,
        &[&missing.display().to_string(), "not a directory"],
    );

    let adapter = save(config(), all_modules(false));
    let weights = adapter.path().join(lora::ADAPTER_WEIGHTS_FILE);
    let bytes = std::fs::read(&weights).unwrap();
    let weights_name = weights.display().to_string();

    // Truncated (an interrupted copy) and garbage.
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    refused(adapter.path(), &[&weights_name, "safetensors"]);
    std::fs::write(&weights, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
    refused(adapter.path(), &[&weights_name, "safetensors"]);

    std::fs::remove_file(&weights).unwrap();
    refused(adapter.path(), &[&weights_name, "missing"]);
    // PEFT's pickle format is never unpickled.
    std::fs::write(adapter.path().join("adapter_model.bin"), b"PK").unwrap();
    refused(adapter.path(), &["adapter_model.bin", "pickle"]);

    let config_path = adapter.path().join(lora::ADAPTER_CONFIG_FILE);
    std::fs::write(&weights, &bytes).unwrap();
    std::fs::write(&config_path, "{\"r\": ").unwrap();
    refused(
        adapter.path(),
        &[&config_path.display().to_string(), "JSON"],
    );
    std::fs::remove_file(&config_path).unwrap();
    refused(
        adapter.path(),
        &[&config_path.display().to_string(), "missing"],
    );
}

#[test]
fn adapters_that_do_not_fit_the_model_are_named() {
    // A module the model does not have (layer 7 of 2).
    let mut modules = all_modules(false);
    modules.insert(
        "llm.model.layers.7.self_attn.q_proj".into(),
        factors(99, R, 64, 64, false),
    );
    let dir = save(config(), modules);
    refused(
        dir.path(),
        &[
            "llm.model.layers.7.self_attn.q_proj.lora_A.weight",
            "does not have",
            "adapter_model.safetensors",
        ],
    );

    // Another base model's shapes: q_proj of a 128-wide model.
    let mut modules = all_modules(false);
    modules.insert(
        "llm.model.layers.0.self_attn.q_proj".into(),
        factors(5, R, 128, 128, false),
    );
    let dir = save(config(), modules);
    refused(
        dir.path(),
        &[
            "llm.model.layers.0.self_attn.q_proj.lora_A.weight",
            "64 inputs",
            "adapter_model.safetensors",
        ],
    );

    // A rank that disagrees with the config.
    let mut modules = all_modules(false);
    modules.insert(
        "llm.model.layers.0.self_attn.k_proj".into(),
        factors(5, 3, 64, 32, false),
    );
    let mut wrong_rank = config();
    wrong_rank.rank_pattern = Patterns(vec![
        ("down_proj".into(), R_DOWN),
        ("layers.0.self_attn.k_proj".into(), 3),
    ]);
    let dir = save(wrong_rank, modules);
    write_config(dir.path(), &config());
    refused(
        dir.path(),
        &["llm.model.layers.0.self_attn.k_proj.lora_A.weight", "r = 4"],
    );

    // An adapter of a bare LLM (no `llm.` prefix) and one on lm_head.
    let dir = save(
        config(),
        BTreeMap::from([(
            "model.layers.0.self_attn.q_proj".to_string(),
            factors(5, R, 64, 64, false),
        )]),
    );
    refused(
        dir.path(),
        &[
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
            "NVILA does not have",
        ],
    );
    let dir = save(
        config(),
        BTreeMap::from([("llm.lm_head".to_string(), factors(5, R, 64, 512, false))]),
    );
    refused(
        dir.path(),
        &["llm.lm_head.lora_A.weight", "lm_head is not supported"],
    );
}

#[test]
fn vision_tower_adapters_apply_and_projector_adapters_are_refused() {
    // VILA's `lora_vt`: factors on the tower's projections are merged like the LLM's (checked
    // against the unmerged reference); factors for tower layers after the cut (the tiny tower
    // runs layers 0 and 1 of 3) are skipped, as they never change the outputs.
    let vt = "vision_tower.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj";
    let cut = "vision_tower.vision_tower.vision_model.encoder.layers.2.mlp.fc1";
    let mut modules = all_modules(false);
    modules.insert(vt.into(), factors(5, R, 32, 32, false));
    let with_tower = save(config(), modules.clone());
    let (ids, lps) = cli_score(Some(with_tower.path()));
    let (_, llm_only) = cli_score(Some(save(config(), all_modules(false)).path()));
    assert!(
        max_abs_diff(&lps, &llm_only) > 1e-4,
        "the tower factors change nothing"
    );
    let (ref_ids, ref_lps) = reference_score(&reference_model(with_tower.path()));
    assert_eq!(ids, ref_ids);
    assert!(max_abs_diff(&lps, &ref_lps) <= 1e-5);
    modules.insert(cut.into(), factors(6, R, 32, 64, false));
    let (_, with_cut) = cli_score(Some(save(config(), modules).path()));
    assert_eq!(with_cut, lps, "factors after the cut must not matter");

    let mut modules = all_modules(false);
    modules.insert("mm_projector.layers.7".into(), factors(5, R, 64, 64, false));
    let dir = save(config(), modules);
    refused(
        dir.path(),
        &[
            "mm_projector.layers.7.lora_A.weight",
            "LoRA on the projector is not supported",
        ],
    );
}

#[test]
fn unsupported_peft_features_are_refused() {
    let dir = save(config(), all_modules(false));
    let config_name = dir
        .path()
        .join(lora::ADAPTER_CONFIG_FILE)
        .display()
        .to_string();
    let mut dora = config();
    dora.use_dora = true;
    write_config(dir.path(), &dora);
    refused(dir.path(), &[&config_name, "DoRA"]);

    let mut to_save = config();
    to_save.modules_to_save = Some(vec!["mm_projector".into()]);
    write_config(dir.path(), &to_save);
    refused(dir.path(), &[&config_name, "modules_to_save"]);

    let mut ia3 = config();
    ia3.peft_type = "IA3".into();
    write_config(dir.path(), &ia3);
    refused(dir.path(), &[&config_name, "IA3"]);
}

#[test]
fn bad_non_lora_trainables_are_named() {
    let dir = save(config(), all_modules(false));
    let st = dir.path().join(lora::NON_LORA_TRAINABLES_FILE);
    let st_name = st.display().to_string();

    // A vision tower tensor the tower does not have (tower tensors after the selected layer,
    // such as `post_layernorm`, are skipped instead: they do not change the outputs).
    let key =
        "base_model.model.vision_tower.vision_tower.vision_model.encoder.layers.0.mlp.fc9.weight";
    save_non_lora_trainables(
        &st,
        &BTreeMap::from([(key.to_string(), matrix(1, 4, 4, 0.1))]),
    )
    .unwrap();
    refused(dir.path(), &[&st_name, key, "does not have"]);
    // Full LLM weights beside an adapter are refused by name.
    let key = "base_model.model.llm.model.norm.weight";
    save_non_lora_trainables(
        &st,
        &BTreeMap::from([(key.to_string(), TensorData::new(values(1, 64, 1.0), [64]))]),
    )
    .unwrap();
    refused(dir.path(), &[&st_name, key, "tune_language_model"]);

    // A projector tensor of the wrong shape, and one the projector does not have.
    let key = "base_model.model.mm_projector.layers.7.weight";
    save_non_lora_trainables(
        &st,
        &BTreeMap::from([(key.to_string(), matrix(1, 64, 32, 0.1))]),
    )
    .unwrap();
    refused(dir.path(), &[&st_name, key, "shape"]);
    let key = "base_model.model.mm_projector.layers.0.weight";
    save_non_lora_trainables(
        &st,
        &BTreeMap::from([(key.to_string(), matrix(1, 4, 4, 0.1))]),
    )
    .unwrap();
    refused(dir.path(), &[&st_name, key, "does not have"]);

    // Corrupt safetensors, and VILA's .bin: a corrupt one, and one holding a pickled module
    // (refused without executing it).
    std::fs::write(&st, b"garbage").unwrap();
    refused(dir.path(), &[&st_name, "safetensors"]);
    std::fs::remove_file(&st).unwrap();
    let bin = dir.path().join(lora::NON_LORA_TRAINABLES_BIN);
    let bin_name = bin.display().to_string();
    std::fs::write(&bin, b"\x80\x02}q\x00.").unwrap();
    refused(dir.path(), &[&bin_name]);
    let refused_module = repo().join("crates/lora/tests/fixtures/refused_module.bin");
    std::fs::copy(refused_module, &bin).unwrap();
    refused(dir.path(), &[&bin_name, "torch.nn.modules.linear"]);
}

/// PEFT interop: the adapter PEFT trained and saved (`crates/trainer/tests/fixtures/parity/`,
/// made by `make_parity.py`) gives PEFT's log-probs (unmerged `PeftModel`) in `infer-cli score`.
#[test]
fn peft_saved_adapter_gives_pefts_logprobs() {
    let parity = repo().join("crates/trainer/tests/fixtures/parity");
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(parity.join("score_reference.json")).unwrap(),
    )
    .unwrap();
    let field = |name: &str| reference[name].as_str().unwrap().to_string();
    let model = repo().join(field("model_path")).display().to_string();
    let img = parity.join(field("image")).display().to_string();
    let adapter = parity.join(field("adapter")).display().to_string();
    let (prompt, response) = (field("prompt"), field("response"));
    assert_eq!(field("image_aspect_ratio"), "dynamic");
    for (section, adapter) in [("with_adapter", Some(adapter.as_str())), ("base", None)] {
        let mut args = vec![
            "score",
            "--model",
            &model,
            "--image",
            &img,
            "--prompt",
            &prompt,
            "--response",
            &response,
            "--image-aspect-ratio",
            "dynamic",
        ];
        if let Some(a) = adapter {
            args.extend(["--adapter", a]);
        }
        let out = ok(&args);
        // base_model_name_or_path is the repository-relative checkpoint path: no warning.
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
        let got = json(&out);
        let (ids, lps) = scores(&got);
        let (want_ids, want_lps) = scores(&reference[section]);
        assert_eq!(ids, want_ids, "{section}: token ids");
        let diff = max_abs_diff(&lps, &want_lps);
        assert!(
            diff <= 1e-4,
            "{section}: log-probs differ from PEFT's by {diff}"
        );
        let sum = got["sum_logprob"].as_f64().unwrap();
        let want_sum = reference[section]["sum_logprob"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-3,
            "{section}: {sum} vs {want_sum}"
        );
    }
    // The adapter moves the log-probs by far more than the tolerance.
    let (_, with) = scores(&reference["with_adapter"]);
    let (_, base) = scores(&reference["base"]);
    assert!(max_abs_diff(&with, &base) > 1e-2);
}

/// PEFT interop the other way: the adapter the Rust trainer wrote in the parity run
/// (`fixtures/parity/rust_adapter/`, bit-equal to what `tests/parity_peft.rs` trains) loaded
/// into Python PEFT (`make_parity.py --verify-rust`) gives `peft_score.json`; `infer-cli score
/// --adapter` on the same folder must give the same log-probs.
#[test]
fn rust_saved_adapter_gives_the_logprobs_peft_computes_for_it() {
    let parity = repo().join("crates/trainer/tests/fixtures/parity");
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(parity.join("score_reference.json")).unwrap(),
    )
    .unwrap();
    let peft: Value = serde_json::from_str(
        &std::fs::read_to_string(parity.join("rust_adapter/peft_score.json")).unwrap(),
    )
    .unwrap();
    let field = |v: &Value, name: &str| v[name].as_str().unwrap().to_string();
    let model = repo()
        .join(field(&reference, "model_path"))
        .display()
        .to_string();
    let img = parity.join(field(&peft, "image")).display().to_string();
    let adapter = parity.join("rust_adapter").display().to_string();
    let (prompt, response) = (field(&peft, "prompt"), field(&peft, "response"));
    let out = ok(&[
        "score",
        "--model",
        &model,
        "--adapter",
        &adapter,
        "--image",
        &img,
        "--prompt",
        &prompt,
        "--response",
        &response,
        "--image-aspect-ratio",
        "dynamic",
    ]);
    let got = json(&out);
    let (ids, lps) = scores(&got);
    let (want_ids, want_lps) = scores(&peft);
    assert_eq!(ids, want_ids);
    let diff = max_abs_diff(&lps, &want_lps);
    assert!(diff <= 1e-4, "log-probs differ from PEFT's by {diff}");
}

/// `infer-cli score --adapter ADAPTER` on the parity fixtures' scored pair, as JSON.
fn score_parity_pair(
    model: &str,
    adapter: &Path,
    img: &str,
    prompt: &str,
    response: &str,
) -> Value {
    let adapter = adapter.display().to_string();
    json(&ok(&[
        "score",
        "--model",
        model,
        "--adapter",
        &adapter,
        "--image",
        img,
        "--prompt",
        prompt,
        "--response",
        response,
        "--image-aspect-ratio",
        "dynamic",
    ]))
}

/// The variants of the parity run with a part trained in full (`make_parity.py --variant
/// projector | vision`): PEFT's adapter plus the trained projector or tower in
/// `non_lora_trainables.safetensors` (VILA's keys; for the tower also the tensors of its unused
/// last layer and `post_layernorm`, which VILA saves too), loaded as VILA's builder does, give
/// PEFT's log-probs in `infer-cli score --adapter`; without that file, PEFT's adapter-only ones.
#[test]
fn adapters_with_tuned_parts_give_pefts_logprobs() {
    for variant in ["projector", "vision"] {
        adapter_with_tuned_part(variant);
    }
}

fn adapter_with_tuned_part(variant: &str) {
    let parity = repo().join("crates/trainer/tests/fixtures/parity");
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(parity.join(variant).join("reference.json")).unwrap(),
    )
    .unwrap();
    let score = &reference["score"];
    let field = |v: &Value, name: &str| v[name].as_str().unwrap().to_string();
    let model = repo()
        .join(field(&reference["config"], "model_path"))
        .display()
        .to_string();
    let img = parity.join(field(score, "image")).display().to_string();
    let adapter = parity.join(field(score, "adapter"));
    let (prompt, response) = (field(score, "prompt"), field(score, "response"));
    let run = |adapter: &Path| score_parity_pair(&model, adapter, &img, &prompt, &response);
    let (ids, lps) = scores(&run(&adapter));
    let (want_ids, want_lps) = scores(&score["with_adapter_and_projector"]);
    assert_eq!(ids, want_ids);
    let diff = max_abs_diff(&lps, &want_lps);
    assert!(
        diff <= 1e-4,
        "{variant}: log-probs differ from PEFT's by {diff}"
    );

    // The same adapter without its non-LoRA file: PEFT's adapter-only log-probs.
    let lora_only = tempfile::tempdir().unwrap();
    for name in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(adapter.join(name), lora_only.path().join(name)).unwrap();
    }
    let (_, lps_only) = scores(&run(lora_only.path()));
    let (_, want_only) = scores(&score["with_adapter_only"]);
    assert!(max_abs_diff(&lps_only, &want_only) <= 1e-4, "{variant}");
    assert!(
        max_abs_diff(&lps_only, &lps) > 1e-3,
        "{variant}: the tuned part changes nothing"
    );
}

/// The other way for the tuned parts: what the Rust trainer wrote with `tune_mm_projector` /
/// `tune_vision_tower` (`projector/rust_adapter/`, `vision/rust_adapter/`, bit-equal to
/// `tests/parity_peft.rs`'s runs), loaded in Python as VILA does (`make_parity.py
/// --verify-rust`), gives `peft_score.json`; infer-cli agrees.
#[test]
fn rust_saved_adapters_with_tuned_parts_give_the_logprobs_python_computes() {
    for variant in ["projector", "vision", "lora_vt"] {
        let parity = repo().join("crates/trainer/tests/fixtures/parity");
        let folder = parity.join(variant).join("rust_adapter");
        let peft: Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("peft_score.json")).unwrap())
                .unwrap();
        let tuned = peft["tuned_projector"] == Value::Bool(true);
        assert!(
            tuned || peft["tower_lora"] == Value::Bool(true),
            "{variant}"
        );
        let field = |name: &str| peft[name].as_str().unwrap().to_string();
        let model = repo()
            .join("fixtures/golden/tiny-nvila")
            .display()
            .to_string();
        let img = parity.join(field("image")).display().to_string();
        let got = score_parity_pair(&model, &folder, &img, &field("prompt"), &field("response"));
        let (ids, lps) = scores(&got);
        let (want_ids, want_lps) = scores(&peft);
        assert_eq!(ids, want_ids);
        let diff = max_abs_diff(&lps, &want_lps);
        assert!(
            diff <= 1e-4,
            "{variant}: log-probs differ from Python's by {diff}"
        );
    }
}

/// `lora_vt` (`make_parity.py --variant lora_vt`): PEFT's adapter with factors on the tower's
/// linears (VILA's tower names; the factors of the layer after the cut included) gives PEFT's
/// log-probs in `infer-cli score --adapter`, and the tower's factors matter.
#[test]
fn adapter_with_lora_on_the_vision_tower_gives_pefts_logprobs() {
    let parity = repo().join("crates/trainer/tests/fixtures/parity");
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(parity.join("lora_vt/reference.json")).unwrap(),
    )
    .unwrap();
    let score = &reference["score"];
    let field = |name: &str| score[name].as_str().unwrap().to_string();
    let model = repo()
        .join("fixtures/golden/tiny-nvila")
        .display()
        .to_string();
    let img = parity.join(field("image")).display().to_string();
    let adapter = parity.join(field("adapter"));
    let got = score_parity_pair(&model, &adapter, &img, &field("prompt"), &field("response"));
    let (ids, lps) = scores(&got);
    let (want_ids, want_lps) = scores(&score["with_adapter_and_projector"]);
    assert_eq!(ids, want_ids);
    let diff = max_abs_diff(&lps, &want_lps);
    assert!(diff <= 1e-4, "log-probs differ from PEFT's by {diff}");
    let (_, llm_only) = scores(&score["with_adapter_only"]);
    assert!(
        max_abs_diff(&llm_only, &want_lps) > 1e-3,
        "the tower's factors change nothing"
    );
}
