//! Qwen2 against PyTorch `transformers`: logits, last hidden state, greedy decoding and the KV
//! cache on the tiny random checkpoint in `fixtures/golden/tiny-nvila/llm/` (two shards plus
//! the index, as the real checkpoint).
//!
//! Reference values: `tests/fixtures/qwen2/qwen2_reference.safetensors`, written with the
//! checkpoint by `tests/fixtures/qwen2/gen.py` (regenerate: `python3
//! crates/nvila-model/tests/fixtures/qwen2/gen.py` from the repository root).
//!
//! Tolerance: `max |a - b| / max |b| <= 1e-4` over the whole tensor (f32 throughout).

mod common;
use common::{rel_err, to_f32};

use std::path::PathBuf;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use nvila_model::text::Qwen2ForCausalLM;
use safetensors::SafeTensors;

const REL_TOL: f32 = 1e-4;

fn llm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/tiny-nvila/llm")
}

struct Reference {
    input_ids: Vec<i64>,
    attention_mask: Vec<i64>,
    logits: Vec<f32>,
    last_hidden_state: Vec<f32>,
    greedy_tokens: Vec<i64>,
    left_input_ids: Vec<i64>,
    left_attention_mask: Vec<i64>,
    left_position_ids: Vec<i64>,
    left_logits: Vec<f32>,
}

fn read_reference() -> Reference {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/qwen2/qwen2_reference.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let i64s = |name: &str| -> Vec<i64> {
        st.tensor(name)
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let f32s = |name: &str| -> Vec<f32> {
        st.tensor(name)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    Reference {
        input_ids: i64s("input_ids"),
        attention_mask: i64s("attention_mask"),
        logits: f32s("logits"),
        last_hidden_state: f32s("last_hidden_state"),
        greedy_tokens: i64s("greedy_tokens"),
        left_input_ids: i64s("left_input_ids"),
        left_attention_mask: i64s("left_attention_mask"),
        left_position_ids: i64s("left_position_ids"),
        left_logits: f32s("left_logits"),
    }
}

fn load(dtype: Option<DType>) -> (Qwen2ForCausalLM, Device) {
    let device = Device::flex();
    let model = Qwen2ForCausalLM::from_pretrained(&llm_dir(), &device, dtype).unwrap();
    (model, device)
}

fn ids(data: &[i64], shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(data.to_vec(), shape), device)
}

fn argmax_last(logits: &Tensor<3>) -> i64 {
    let [_, s, v] = logits.dims();
    let last = logits.clone().narrow(1, s - 1, 1).reshape([v]);
    last.argmax(0).into_scalar()
}

#[test]
fn logits_and_hidden_match_transformers_with_padding() {
    let (model, device) = load(None);
    let r = read_reference();
    let input_ids = ids(&r.input_ids, [2, 12], &device);
    let padding = ids(&r.attention_mask, [2, 12], &device).equal_elem(0);
    let embeds = model.embed(input_ids).unwrap();
    let hidden = model.forward(embeds, Some(padding), None).unwrap();
    let logits = model.logits(hidden.clone());
    assert_eq!(logits.dims(), [2, 12, 512]);
    let e_hidden = rel_err(&to_f32(hidden), &r.last_hidden_state);
    let e_logits = rel_err(&to_f32(logits), &r.logits);
    eprintln!("relative error: last hidden state {e_hidden:e}, logits {e_logits:e}");
    assert!(
        e_hidden <= REL_TOL,
        "last hidden state: relative error {e_hidden}"
    );
    assert!(e_logits <= REL_TOL, "logits: relative error {e_logits}");
}

#[test]
fn left_padding_with_explicit_positions_matches_transformers() {
    // Row 1 starts with two pads, so its first two queries see no unmasked key: HF eager then
    // attends uniformly (additive finfo.min mask), and so must the port.
    let (model, device) = load(None);
    let r = read_reference();
    let embeds = model
        .embed(ids(&r.left_input_ids, [2, 12], &device))
        .unwrap();
    let positions = ids(&r.left_position_ids, [2, 12], &device);
    let padding = ids(&r.left_attention_mask, [2, 12], &device).equal_elem(0);
    let hidden = model
        .forward_with_positions(embeds, positions, Some(padding), None)
        .unwrap();
    let e = rel_err(&to_f32(model.logits(hidden)), &r.left_logits);
    assert!(e <= REL_TOL, "relative error {e}");
}

#[test]
fn forward_ids_matches_unpadded_row() {
    let (model, device) = load(None);
    let r = read_reference();
    let logits = model
        .forward_ids(ids(&r.input_ids[..12], [1, 12], &device))
        .unwrap();
    let e = rel_err(&to_f32(logits), &r.logits[..12 * 512]);
    assert!(e <= REL_TOL, "relative error {e}");
}

#[test]
fn greedy_decoding_with_cache_matches_generate() {
    let (model, device) = load(None);
    let r = read_reference();
    let mut cache = model.new_cache();
    let embeds = model
        .embed(ids(&r.input_ids[..12], [1, 12], &device))
        .unwrap();
    let mut logits = model.logits(model.forward(embeds, None, Some(&mut cache)).unwrap());
    let mut tokens = Vec::new();
    for _ in 0..r.greedy_tokens.len() {
        let next = argmax_last(&logits);
        tokens.push(next);
        let embeds = model.embed(ids(&[next], [1, 1], &device)).unwrap();
        logits = model.logits(model.forward(embeds, None, Some(&mut cache)).unwrap());
    }
    assert_eq!(tokens, r.greedy_tokens);
    assert_eq!(cache.seq_len(), 12 + r.greedy_tokens.len());
}

#[test]
fn cached_prefill_chunk_and_steps_equal_full_forward() {
    let (model, device) = load(None);
    let r = read_reference();
    // Row 0 followed by the greedy continuation: 18 tokens, both rows of a batch of 2 (row 1
    // shifted) so the batch axis of the cache is exercised.
    let row0: Vec<i64> = r.input_ids[..12]
        .iter()
        .chain(&r.greedy_tokens)
        .copied()
        .collect();
    let row1: Vec<i64> = row0.iter().rev().copied().collect();
    let all: Vec<i64> = row0.iter().chain(&row1).copied().collect();
    let n = row0.len();
    let full = to_f32(model.forward_ids(ids(&all, [2, n], &device)).unwrap());

    let mut cache = model.new_cache();
    let mut got = [Vec::new(), Vec::new()];
    // Prefill 5, then a chunk of 4 (several queries against cached keys: bottom-right causal
    // mask), then one token at a time.
    let mut start = 0;
    for len in [5, 4].into_iter().chain(std::iter::repeat_n(1, n - 9)) {
        let chunk: Vec<i64> = [&row0[start..start + len], &row1[start..start + len]].concat();
        let embeds = model.embed(ids(&chunk, [2, len], &device)).unwrap();
        let logits = to_f32(model.logits(model.forward(embeds, None, Some(&mut cache)).unwrap()));
        for (row, out) in got.iter_mut().enumerate() {
            out.extend_from_slice(&logits[row * len * 512..(row + 1) * len * 512]);
        }
        start += len;
    }
    let got: Vec<f32> = got.concat();
    let e = rel_err(&got, &full);
    eprintln!("cached vs full forward: relative error {e:e}");
    assert!(e <= REL_TOL, "cached vs full forward: relative error {e}");
    assert_eq!(cache.seq_len(), n);
}

#[test]
fn cached_decode_with_padding_mask_equals_full_forward() {
    let (model, device) = load(None);
    let r = read_reference();
    // Row 1 is right-padded after 9 tokens; decode rows 0 and 1 over positions 9..12 with the
    // padding mask growing with the cache, and compare with the masked full forward (valid rows).
    let input_ids = ids(&r.input_ids, [2, 12], &device);
    let padding = ids(&r.attention_mask, [2, 12], &device).equal_elem(0);
    let full = to_f32(
        model.logits(
            model
                .forward(
                    model.embed(input_ids.clone()).unwrap(),
                    Some(padding.clone()),
                    None,
                )
                .unwrap(),
        ),
    );
    let mut cache = model.new_cache();
    let prefix = model.embed(input_ids.clone().narrow(1, 0, 9)).unwrap();
    model
        .forward(
            prefix,
            Some(padding.clone().narrow(1, 0, 9)),
            Some(&mut cache),
        )
        .unwrap();
    for pos in 9..12 {
        let embeds = model.embed(input_ids.clone().narrow(1, pos, 1)).unwrap();
        let logits = to_f32(
            model.logits(
                model
                    .forward(
                        embeds,
                        Some(padding.clone().narrow(1, 0, pos + 1)),
                        Some(&mut cache),
                    )
                    .unwrap(),
            ),
        );
        for row in 0..2 {
            let want = &full[(row * 12 + pos) * 512..(row * 12 + pos + 1) * 512];
            let e = rel_err(&logits[row * 512..(row + 1) * 512], want);
            assert!(e <= REL_TOL, "row {row} position {pos}: relative error {e}");
        }
    }
}

#[test]
fn bf16_weights_stay_bf16_and_track_f32() {
    let (model, device) = load(Some(DType::BF16));
    assert_eq!(model.model.embed_tokens.weight.val().dtype(), DType::BF16);
    let r = read_reference();
    let logits = model
        .forward_ids(ids(&r.input_ids[..12], [1, 12], &device))
        .unwrap();
    assert_eq!(logits.dtype(), DType::BF16);
    // bf16 keeps 8 mantissa bits; through 2 layers the logits stay within a few percent.
    let e = rel_err(&to_f32(logits), &r.logits[..12 * 512]);
    eprintln!("bf16 vs f32 reference: relative error {e:e}");
    assert!(e <= 5e-2, "bf16 relative error {e}");
}
