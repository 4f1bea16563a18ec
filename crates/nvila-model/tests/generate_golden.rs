//! Generation on the tiny Qwen2 checkpoint (`fixtures/golden/tiny-nvila/llm/`): greedy tokens
//! against HF `generate(inputs_embeds=..., do_sample=False, eos_token_id=...)`, stop ids,
//! `max_new_tokens`, the `on_token` callback, and seeded sampling.
//!
//! Reference: `tests/fixtures/generate/golden.json`, written by
//! `tests/fixtures/generate/gen.py` (regenerate: `python3
//! crates/nvila-model/tests/fixtures/generate/gen.py` from the repository root).

use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor, TensorData};
use nvila_model::ModelError;
use nvila_model::generate::{GenerateOptions, generate_from_embeds, generate_from_embeds_in_vocab};
use nvila_model::text::Qwen2ForCausalLM;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load() -> (Qwen2ForCausalLM, Device) {
    let device = Device::flex();
    let dir = root().join("../../fixtures/golden/tiny-nvila/llm");
    (
        Qwen2ForCausalLM::from_pretrained(&dir, &device, None).unwrap(),
        device,
    )
}

struct Case {
    name: String,
    prompt_ids: Vec<i64>,
    stop_ids: Vec<u32>,
    max_new_tokens: usize,
    expected: Vec<u32>,
    hit_stop: bool,
}

fn cases() -> Vec<Case> {
    let path = root().join("tests/fixtures/generate/golden.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let nums = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_owned(),
            prompt_ids: nums(&c["prompt_ids"])
                .into_iter()
                .map(|x| x as i64)
                .collect(),
            stop_ids: nums(&c["stop_ids"]).into_iter().map(|x| x as u32).collect(),
            max_new_tokens: c["max_new_tokens"].as_u64().unwrap() as usize,
            expected: nums(&c["expected"]).into_iter().map(|x| x as u32).collect(),
            hit_stop: c["hit_stop"].as_bool().unwrap(),
        })
        .collect()
}

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap()
}

fn embeds(llm: &Qwen2ForCausalLM, ids: &[i64], device: &Device) -> Tensor<3> {
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids.to_vec(), [1, ids.len()]), device);
    llm.embed(ids).unwrap()
}

fn run(
    llm: &Qwen2ForCausalLM,
    device: &Device,
    prompt: &[i64],
    stop_ids: &[u32],
    opts: &GenerateOptions,
) -> Vec<u32> {
    let mut seen = Vec::new();
    let out = generate_from_embeds(llm, embeds(llm, prompt, device), stop_ids, opts, &mut |t| {
        seen.push(t);
        true
    })
    .unwrap();
    assert_eq!(seen, out, "on_token sees exactly the returned tokens");
    out
}

fn greedy(max_new_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens,
        ..GenerateOptions::default()
    }
}

fn sampling(temperature: f32, top_p: f32, seed: u64, max_new_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens,
        temperature,
        top_p,
        seed,
    }
}

#[test]
fn fixture_covers_both_endings() {
    let cases = cases();
    assert!(cases.iter().any(|c| c.hit_stop));
    assert!(cases.iter().any(|c| !c.hit_stop));
}

#[test]
fn greedy_matches_transformers_generate() {
    let (llm, device) = load();
    for c in cases() {
        let got = run(
            &llm,
            &device,
            &c.prompt_ids,
            &c.stop_ids,
            &greedy(c.max_new_tokens),
        );
        assert_eq!(got, c.expected, "case {}", c.name);
        if c.hit_stop {
            assert!(got.len() < c.max_new_tokens, "case {}", c.name);
        } else {
            assert_eq!(got.len(), c.max_new_tokens, "case {}", c.name);
        }
    }
}

#[test]
fn stop_id_ends_generation_and_is_not_returned() {
    let (llm, device) = load();
    let free = case("no_stop");
    // Every token of the unconstrained run, used as a stop id, cuts the output just before its
    // first occurrence.
    for (k, &stop) in free.expected.iter().enumerate() {
        let first = free.expected.iter().position(|&t| t == stop).unwrap();
        if first != k {
            continue;
        }
        let got = run(
            &llm,
            &device,
            &free.prompt_ids,
            &[stop],
            &greedy(free.max_new_tokens),
        );
        assert_eq!(got, free.expected[..first], "stop id {stop}");
    }
    // A stop id that is never produced changes nothing.
    let got = run(
        &llm,
        &device,
        &free.prompt_ids,
        &[],
        &greedy(free.max_new_tokens),
    );
    assert_eq!(got, free.expected);
}

#[test]
fn max_new_tokens_bounds_the_output() {
    let (llm, device) = load();
    let free = case("no_stop");
    for n in [0, 1, 5] {
        let got = run(&llm, &device, &free.prompt_ids, &free.stop_ids, &greedy(n));
        assert_eq!(got, free.expected[..n], "max_new_tokens {n}");
    }
}

#[test]
fn on_token_returning_false_stops_after_that_token() {
    let (llm, device) = load();
    let free = case("no_stop");
    let mut calls = 0;
    let got = generate_from_embeds(
        &llm,
        embeds(&llm, &free.prompt_ids, &device),
        &free.stop_ids,
        &greedy(free.max_new_tokens),
        &mut |_| {
            calls += 1;
            calls < 3
        },
    )
    .unwrap();
    assert_eq!(calls, 3);
    assert_eq!(got, free.expected[..3]);
}

#[test]
fn sampling_is_seeded() {
    let (llm, device) = load();
    let c = case("other_prompt");
    let n = 16;
    let a = run(
        &llm,
        &device,
        &c.prompt_ids,
        &[],
        &sampling(1.0, 0.95, 42, n),
    );
    let b = run(
        &llm,
        &device,
        &c.prompt_ids,
        &[],
        &sampling(1.0, 0.95, 42, n),
    );
    assert_eq!(a, b, "same seed, same tokens");
    assert_eq!(a.len(), n);
    let others: Vec<Vec<u32>> = (0..4)
        .map(|seed| {
            run(
                &llm,
                &device,
                &c.prompt_ids,
                &[],
                &sampling(1.0, 0.95, seed, n),
            )
        })
        .collect();
    assert!(
        others.iter().any(|o| *o != a),
        "five seeds gave the same 16 tokens: {a:?}"
    );
    let greedy_tokens = run(&llm, &device, &c.prompt_ids, &[], &greedy(n));
    assert!(
        std::iter::once(&a)
            .chain(&others)
            .any(|o| *o != greedy_tokens),
        "sampling at temperature 1 never left the greedy path"
    );
}

#[test]
fn near_zero_temperature_or_top_p_is_greedy() {
    let (llm, device) = load();
    for c in cases() {
        let want = &c.expected;
        let n = c.max_new_tokens;
        let cold = run(
            &llm,
            &device,
            &c.prompt_ids,
            &c.stop_ids,
            &sampling(1e-6, 1.0, 3, n),
        );
        assert_eq!(&cold, want, "case {}: temperature 1e-6", c.name);
        let narrow = run(
            &llm,
            &device,
            &c.prompt_ids,
            &c.stop_ids,
            &sampling(1.0, 1e-6, 3, n),
        );
        assert_eq!(&narrow, want, "case {}: top_p 1e-6", c.name);
        let zero = run(
            &llm,
            &device,
            &c.prompt_ids,
            &c.stop_ids,
            &sampling(1.0, 0.0, 3, n),
        );
        assert_eq!(&zero, want, "case {}: top_p 0", c.name);
    }
}

#[test]
fn bad_options_and_inputs_are_errors() {
    let (llm, device) = load();
    let prompt = embeds(&llm, &[1, 2, 3], &device);
    let mut keep = |_| true;
    for opts in [
        sampling(-1.0, 1.0, 0, 4),
        sampling(f32::NAN, 1.0, 0, 4),
        sampling(1.0, 1.5, 0, 4),
        sampling(1.0, -0.1, 0, 4),
    ] {
        let err = generate_from_embeds(&llm, prompt.clone(), &[], &opts, &mut keep);
        assert!(
            matches!(err, Err(ModelError::Input(_))),
            "{opts:?}: {err:?}"
        );
    }
    let batch2 = Tensor::cat(vec![prompt.clone(), prompt], 0);
    let err = generate_from_embeds(&llm, batch2, &[], &greedy(4), &mut keep);
    assert!(matches!(err, Err(ModelError::Input(m)) if m.contains("batch 2")));
}

#[test]
fn in_vocab_generation_never_leaves_the_vocabulary() {
    let (llm, device) = load();
    let free = case("no_stop");
    let opts = greedy(free.max_new_tokens);
    let mut keep = |_| true;
    let prompt = || embeds(&llm, &free.prompt_ids, &device);
    // The whole vocabulary (or more) is plain generation.
    for vocab in [512, 600] {
        let got =
            generate_from_embeds_in_vocab(&llm, prompt(), vocab, &free.stop_ids, &opts, &mut keep)
                .unwrap();
        assert_eq!(got, free.expected, "vocab {vocab}");
    }
    // A smaller one restricts greedy and sampled choices alike.
    let limit = 200;
    assert!(free.expected.iter().any(|&t| t >= limit as u32));
    for opts in [opts.clone(), sampling(1.0, 1.0, 9, free.max_new_tokens)] {
        let got =
            generate_from_embeds_in_vocab(&llm, prompt(), limit, &free.stop_ids, &opts, &mut keep)
                .unwrap();
        assert_eq!(got.len(), free.max_new_tokens);
        assert!(got.iter().all(|&t| t < limit as u32), "{got:?}");
    }
    let err = generate_from_embeds_in_vocab(&llm, prompt(), 0, &[], &opts, &mut keep);
    assert!(matches!(err, Err(ModelError::Input(_))));
}
