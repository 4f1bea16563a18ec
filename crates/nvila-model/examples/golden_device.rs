//! Runs the golden comparisons of `tests/` (PyTorch references of the tiny checkpoint) on any
//! device and dtype, so they can be repeated on CUDA in bf16, where `cargo test` (CPU, f32)
//! cannot go. Prints one JSON line per comparison and exits non-zero if one fails.
//!
//! ```text
//! cargo run --release -p nvila-model --features cuda --example golden_device -- --device cuda:0 --dtype bf16
//! ```
//!
//! Tolerances (`max |a - b| / max |b|`): 1e-4 in f32, as the tests; 3e-2 in bf16, whose 8-bit
//! mantissa alone gives 4e-3 per rounding and the tiny model's outputs go through a few dozen
//! of them. Greedy tokens must be identical in f32; in bf16 they are reported (a different
//! argmax among near-ties is expected), not required.

use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use nvila_model::processor::load_image;
use nvila_model::projector::{Projector, ProjectorConfig};
use nvila_model::text::Qwen2ForCausalLM;
use nvila_model::vision::SiglipVisionTower;
use nvila_model::{NvilaModel, Weights};

/// This crate's folder: where it was built, unless `NVILA_CRATE_DIR` says otherwise (a binary
/// carried to another machine, run from a copy of the repository).
fn root() -> PathBuf {
    std::env::var_os("NVILA_CRATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn parse_device(s: &str) -> Result<Device, String> {
    nvila_model::device::parse(s).map_err(|e| format!("--device: {e}"))
}

fn to_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.cast(DType::F32)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// `max |a - b| / max |b|`.
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    if got.len() != want.len() {
        return f32::INFINITY;
    }
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

fn reference(dir: &Path, file: &str, device: &Device) -> Result<Weights, String> {
    Weights::from_files(dir, &[dir.join(file)], device, Some(DType::F32)).map_err(|e| e.to_string())
}

/// Integer tensors (token ids, masks) of a reference file: `Weights` hands out floats only.
fn i64s(path: &Path, name: &str) -> Result<Vec<i64>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| e.to_string())?;
    let view = st
        .tensor(name)
        .map_err(|e| format!("{}: {name}: {e}", path.display()))?;
    Ok(view
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

fn int_tensor(values: Vec<i64>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

struct Report {
    tol: f32,
    failed: bool,
}

impl Report {
    fn check(&mut self, name: &str, err: f32) {
        let ok = err <= self.tol;
        self.failed |= !ok;
        println!(
            "{{\"check\":\"{name}\",\"rel_err\":{err:e},\"tol\":{:e},\"ok\":{ok}}}",
            self.tol
        );
    }
}

fn run(device: &Device, dtype: DType, report: &mut Report) -> Result<(), String> {
    let golden = root().join("../../fixtures/golden/tiny-nvila");
    let want_dtype = Some(dtype);

    // Qwen2: logits of a right-padded batch, and greedy decoding.
    let qdir = root().join("tests/fixtures/qwen2");
    let r = reference(&qdir, "qwen2_reference.safetensors", device)?;
    let llm = Qwen2ForCausalLM::from_pretrained(&golden.join("llm"), device, want_dtype)
        .map_err(|e| e.to_string())?;
    let qfile = qdir.join("qwen2_reference.safetensors");
    let ids = int_tensor(i64s(&qfile, "input_ids")?, [2, 12], device);
    let padding = int_tensor(i64s(&qfile, "attention_mask")?, [2, 12], device).equal_elem(0);
    let embeds = llm.embed(ids).map_err(|e| e.to_string())?;
    let hidden = llm
        .forward(embeds, Some(padding), None)
        .map_err(|e| e.to_string())?;
    let logits = llm.logits(hidden);
    let want: Tensor<3> = r
        .tensor("logits", [2, 12, 512])
        .map_err(|e| e.to_string())?;
    report.check("qwen2_logits", rel_err(&to_f32(logits), &to_f32(want)));

    let prompt = int_tensor(i64s(&qfile, "greedy_prompt")?, [1, 12], device);
    let expected = i64s(&qfile, "greedy_tokens")?;
    let mut cache = llm.new_cache();
    let mut next = llm.embed(prompt).map_err(|e| e.to_string())?;
    let mut tokens = Vec::new();
    for _ in 0..expected.len() {
        let hidden = llm
            .forward(next, None, Some(&mut cache))
            .map_err(|e| e.to_string())?;
        let [_, s, _] = hidden.dims();
        let last_logits = llm.logits(hidden.narrow(1, s - 1, 1)).cast(DType::F32);
        let [_, _, vocab] = last_logits.dims();
        let last = last_logits.reshape([vocab]);
        let token: i64 = last.argmax(0).into_scalar();
        tokens.push(token);
        let id = Tensor::<2, Int>::from_data(TensorData::new(vec![token], [1, 1]), device);
        next = llm.embed(id).map_err(|e| e.to_string())?;
    }
    let same = tokens == expected;
    if dtype == DType::F32 {
        report.failed |= !same;
    }
    println!(
        "{{\"check\":\"qwen2_greedy\",\"tokens\":{tokens:?},\"expected\":{expected:?},\"identical\":{same}}}"
    );

    // SigLIP: hidden_states[-2] of two tiles.
    let sdir = root().join("tests/fixtures/siglip");
    let r = reference(&sdir, "reference.safetensors", device)?;
    let tower =
        SiglipVisionTower::from_pretrained(&golden.join("vision_tower"), device, want_dtype, -2)
            .map_err(|e| e.to_string())?;
    let pixels: Tensor<4> = r
        .tensor("pixel_values", [2, 3, 56, 56])
        .map_err(|e| e.to_string())?;
    let features = tower
        .forward(pixels.cast(dtype))
        .map_err(|e| e.to_string())?;
    let hidden: Tensor<4> = r
        .tensor("hidden_states", [4, 2, 16, 32])
        .map_err(|e| e.to_string())?;
    let want = hidden.narrow(0, 2, 1).reshape([2, 16, 32]);
    report.check(
        "siglip_hidden_states_-2",
        rel_err(&to_f32(features), &to_f32(want)),
    );

    // Projector 3x3_fix on a 4x4 grid (padding) and a 6x6 grid.
    let pdir = root().join("tests/fixtures/projector");
    let r = reference(&pdir, "reference.safetensors", device)?;
    let proj_dir = golden.join("mm_projector");
    let config =
        ProjectorConfig::from_file(&proj_dir.join("config.json")).map_err(|e| e.to_string())?;
    let weights = Weights::open(&proj_dir, device, want_dtype).map_err(|e| e.to_string())?;
    let projector = Projector::load(&weights, &config, 32, 64).map_err(|e| e.to_string())?;
    for side in [4usize, 6] {
        let input: Tensor<3> = r
            .tensor(&format!("3x3.{side}x{side}.input"), [2, side * side, 32])
            .map_err(|e| e.to_string())?;
        let want: Tensor<3> = r
            .tensor(&format!("3x3.{side}x{side}.output"), [2, 4, 64])
            .map_err(|e| e.to_string())?;
        let got = projector
            .forward(input.cast(dtype))
            .map_err(|e| e.to_string())?;
        report.check(
            &format!("projector_3x3_{side}x{side}"),
            rel_err(&to_f32(got), &to_f32(want)),
        );
    }

    // The whole model (`fixtures/golden/reference`, from `make_golden.py`): supervised
    // log-probs on VILA's training path, greedy tokens on its inference path.
    let refdir = golden.join("../reference");
    let text = std::fs::read_to_string(refdir.join("reference.json")).map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let model =
        NvilaModel::from_checkpoint(&golden, device, want_dtype).map_err(|e| e.to_string())?;
    let cases = json["cases"].as_array().cloned().unwrap_or_default();
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?").to_string();
        let mut images = Vec::new();
        for img in case["images"].as_array().cloned().unwrap_or_default() {
            let file = refdir.join(img.as_str().unwrap_or_default());
            images.push(load_image(&file).map_err(|e| e.to_string())?);
        }
        let prompt = case["prompt"].as_str().unwrap_or_default();
        let ints = |v: &serde_json::Value| -> Vec<i64> {
            v.as_array()
                .map(|a| a.iter().filter_map(|x| x.as_i64()).collect())
                .unwrap_or_default()
        };
        if case["path"] == "training" {
            let response = case["response"].as_str().unwrap_or_default();
            let out = model
                .score(prompt, &images, response, None)
                .map_err(|e| e.to_string())?;
            let want: Vec<f32> = case["logprobs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_f64())
                        .map(|x| x as f32)
                        .collect()
                })
                .unwrap_or_default();
            let max_abs = if out.logprobs.len() == want.len() {
                out.logprobs
                    .iter()
                    .zip(&want)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            } else {
                f32::INFINITY
            };
            // Log-probs are sums of logits' differences: an absolute bound, 1e-3 in f32 as the
            // tests, and 0.1 nats in bf16.
            let tol = if dtype == DType::F32 { 1e-3 } else { 1e-1 };
            let ok = max_abs <= tol
                && out
                    .token_ids
                    .iter()
                    .map(|&t| t as i64)
                    .eq(ints(&case["supervised_ids"]));
            report.failed |= !ok;
            println!(
                "{{\"check\":\"nvila_logprobs_{name}\",\"max_abs_err\":{max_abs:e},\"sum\":{},\"sum_ref\":{},\"tol\":{tol:e},\"ok\":{ok}}}",
                out.sum_logprob, case["sum_logprob"]
            );
        } else {
            let stop: Vec<i64> = ints(&case["stop_ids"]);
            let expected = ints(&case["greedy_tokens"]);
            let embeds = model
                .prepare_generation(prompt, &images)
                .map_err(|e| e.to_string())?;
            let mut cache = model.llm.new_cache();
            let mut hidden = model
                .llm
                .forward(embeds, None, Some(&mut cache))
                .map_err(|e| e.to_string())?;
            let mut tokens = Vec::new();
            for _ in 0..expected.len() {
                let s = hidden.dims()[1];
                let logits = model
                    .llm
                    .logits(hidden.narrow(1, s - 1, 1))
                    .cast(DType::F32);
                let logits = logits.narrow(2, 0, model.vocab_len());
                let id: i64 = logits.argmax(2).reshape([1]).into_scalar();
                tokens.push(id);
                if stop.contains(&id) {
                    break;
                }
                let next = model
                    .llm
                    .embed(Tensor::from_data(TensorData::new(vec![id], [1, 1]), device))
                    .map_err(|e| e.to_string())?;
                hidden = model
                    .llm
                    .forward(next, None, Some(&mut cache))
                    .map_err(|e| e.to_string())?;
            }
            let same = tokens == expected;
            if dtype == DType::F32 {
                report.failed |= !same;
            }
            println!(
                "{{\"check\":\"nvila_greedy_{name}\",\"tokens\":{tokens:?},\"expected\":{expected:?},\"identical\":{same}}}"
            );
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_string())
    };
    let device = match parse_device(&arg("--device", "cpu")) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let (dtype, tol) = match arg("--dtype", "f32").as_str() {
        "f32" => (DType::F32, 1e-4),
        "bf16" => (DType::BF16, 3e-2),
        other => {
            eprintln!("--dtype: expected f32 or bf16, got {other:?}");
            std::process::exit(2);
        }
    };
    println!("{{\"device\":\"{device:?}\",\"dtype\":\"{dtype:?}\"}}");
    let mut report = Report { tol, failed: false };
    if let Err(e) = run(&device, dtype, &mut report) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    if report.failed {
        std::process::exit(1);
    }
}
