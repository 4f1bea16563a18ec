//! `NvilaModel::generate` end to end on the tiny checkpoint `fixtures/golden/tiny-nvila/`:
//! greedy tokens against VILA's inference path (`generate_content` → HF `generate`), the
//! streamed text, seeded sampling and input errors.
//!
//! References: the `generation` cases of `fixtures/golden/reference/reference.json` (written by
//! `fixtures/golden/make_golden.py`; `greedy_tokens` are HF `generate(do_sample=False)` with
//! VILA's stop ids, the stop id included when it was hit).

use std::path::PathBuf;

use burn::tensor::Device;
use nvila_model::generate::{GenerateOptions, Generation};
use nvila_model::processor::load_image;
use nvila_model::{ModelError, NvilaModel};
use serde_json::Value;

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden")
}

fn model() -> NvilaModel {
    NvilaModel::from_checkpoint(&golden().join("tiny-nvila"), &Device::flex(), None).unwrap()
}

fn generation_cases() -> Vec<Value> {
    let path = golden().join("reference/reference.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["path"] == "generation")
        .cloned()
        .collect()
}

fn images(case: &Value) -> Vec<image::RgbImage> {
    case["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| load_image(&golden().join("reference").join(p.as_str().unwrap())).unwrap())
        .collect()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Generates, collecting the streamed pieces.
fn generate(
    model: &NvilaModel,
    prompt: &str,
    images: &[image::RgbImage],
    opts: &GenerateOptions,
) -> (Generation, Vec<String>) {
    let mut pieces = Vec::new();
    let out = model
        .generate_detailed(prompt, images, opts, &mut |p| pieces.push(p.to_owned()))
        .unwrap();
    (out, pieces)
}

#[test]
fn greedy_generation_matches_vila_and_streams_the_answer() {
    let model = model();
    let tok = model.processor.tokenizer();
    let cases = generation_cases();
    assert!(!cases.is_empty());
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let prompt = case["prompt"].as_str().unwrap();
        let imgs = images(case);
        let stop = u32s(&case["stop_ids"]);
        let mut want = u32s(&case["greedy_tokens"]);
        let budget = want.len();
        if want.last().is_some_and(|t| stop.contains(t)) {
            want.pop();
        }
        let opts = GenerateOptions {
            max_new_tokens: budget,
            ..GenerateOptions::default()
        };
        let (out, pieces) = generate(&model, prompt, &imgs, &opts);
        assert_eq!(out.token_ids, want, "{name}: greedy tokens");
        assert_eq!(
            out.prompt_tokens,
            case["spliced_len"].as_u64().unwrap() as usize,
            "{name}: prompt length"
        );
        let decoded = tok.decode(&want, true).unwrap();
        assert_eq!(out.text, decoded.trim(), "{name}: text");
        assert_eq!(pieces.concat(), out.text, "{name}: streamed pieces");
        let mut streamed = String::new();
        let text = model
            .generate(prompt, &imgs, &opts, &mut |p| streamed.push_str(p))
            .unwrap();
        assert_eq!(
            (text.as_str(), streamed.as_str()),
            (out.text.as_str(), out.text.as_str())
        );
    }
}

#[test]
fn sampling_is_seeded_and_greedy_in_the_limit() {
    let model = model();
    let case = &generation_cases()[0];
    let prompt = case["prompt"].as_str().unwrap();
    let imgs = images(case);
    let opts = |temperature, top_p, seed| GenerateOptions {
        max_new_tokens: 10,
        temperature,
        top_p,
        seed,
    };
    let a = generate(&model, prompt, &imgs, &opts(1.0, 0.9, 5)).0;
    let b = generate(&model, prompt, &imgs, &opts(1.0, 0.9, 5)).0;
    assert_eq!(a, b);
    let greedy = generate(&model, prompt, &imgs, &opts(0.0, 1.0, 0)).0;
    let cold = generate(&model, prompt, &imgs, &opts(1e-6, 1.0, 5)).0;
    assert_eq!(cold, greedy);
    let others: Vec<Generation> = (6..10)
        .map(|seed| generate(&model, prompt, &imgs, &opts(1.0, 0.9, seed)).0)
        .collect();
    assert!(others.iter().any(|o| o.token_ids != a.token_ids));
    for g in std::iter::once(&a).chain(&others) {
        assert!(
            g.token_ids
                .iter()
                .all(|&t| (t as usize) < model.vocab_len())
        );
    }
}

#[test]
fn bad_prompts_and_options_are_errors() {
    let model = model();
    let case = &generation_cases()[0];
    let imgs = images(case);
    let mut ignore = |_: &str| {};
    let err = model.generate(
        "<image> <image>",
        &imgs[..1],
        &GenerateOptions::default(),
        &mut ignore,
    );
    assert!(matches!(err, Err(ModelError::Input(m)) if m.contains("<image>")));
    let bad = GenerateOptions {
        temperature: -0.5,
        ..GenerateOptions::default()
    };
    let err = model.generate("hi", &imgs, &bad, &mut ignore);
    assert!(matches!(err, Err(ModelError::Input(m)) if m.contains("temperature")));
}
