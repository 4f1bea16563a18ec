//! `step::forward_backward` (first pass without a kept graph, chunked loss head, attention in
//! query blocks, each layer recomputed in reverse) gives the gradients of one ordinary full-graph backward of the same
//! loss, with LoRA dropout on: the recompute must see the first pass's dropout masks.

use std::collections::BTreeMap;

use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Device, Gradients, Int, Tensor, TensorData};
use lora::{AdapterConfig, InitLoraWeights, TargetModules};
use nvila_model::NvilaModel;
use nvila_model::text::attention::{attend, attention_mask};
use nvila_model::text::decoder::Qwen2DecoderLayer;
use nvila_model::text::rope::sequential_positions;
use trainer::adapter::{self, AdapterInit, TrainProjection};
use trainer::step::{Chunks, LlmBatch, forward_backward, layer_seed, supervised_rows};

/// Small blocks, so the tiny batch crosses block boundaries in both the loss head and attention.
const CHUNKS: Chunks = Chunks {
    loss_rows: 2,
    attention_queries: 4,
    layer_rows: 4,
};

fn tiny() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/tiny-nvila")
}

fn lora_ids(layer: &Qwen2DecoderLayer<TrainProjection>) -> Vec<Tensor<2>> {
    // The layer index only names the keys; the values are what the test needs.
    adapter::layer_trainables(0, layer)
        .into_iter()
        .map(|t| t.value)
        .collect()
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.cast(DType::F32).into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn recompute_with_dropout_equals_a_full_backward() {
    let device = Device::flex().autodiff();
    let base = NvilaModel::from_checkpoint(&tiny(), &device, Some(DType::F32)).unwrap();
    let targets = adapter::default_targets(&base, true, false).unwrap();
    let mut config = AdapterConfig::new(4, 8.0, TargetModules::Names(targets));
    config.lora_dropout = 0.3;
    // Both factors random, so every factor has a gradient.
    config.init_lora_weights = InitLoraWeights::Bool(false);
    let model = adapter::attach(
        base,
        AdapterInit::Fresh {
            config: &config,
            seed: 7,
        },
    )
    .unwrap();
    let llm = &model.llm;

    // Two right-padded rows of random embeddings with a few supervised labels each.
    let (b, s, h) = (2, 9, llm.config.hidden_size);
    let inner = device.clone().without_autodiff();
    let embeds = Tensor::<3>::random(
        [b, s, h],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &inner,
    );
    let mut labels = vec![-100i64; b * s];
    for (i, t) in [(0, 3), (0, 4), (0, 8), (1, 2), (1, 5)] {
        labels[i * s + t] = (7 * t as i64 + 11 * i as i64) % 500;
    }
    let padding = Tensor::<2, burn::tensor::Bool>::from_data(
        TensorData::new(
            (0..b * s)
                .map(|k| k / s == 1 && k % s >= 7)
                .collect::<Vec<_>>(),
            [b, s],
        ),
        &inner,
    );
    let batch = LlmBatch {
        embeds: embeds.clone(),
        labels: labels.clone(),
        key_padding: Some(padding.clone()),
    };
    let (scale, seed) = (1.0 / 5.0, 1234);

    // The checkpointed step: loss head in chunks of 2 rows, attention in blocks of 4 queries
    // and the position-wise part in blocks of 4 positions (9 positions: blocks 4, 4, 1). Each
    // layer's gradients arrive in one call per position block (the projections after the
    // attention core) and one more (those before): summed here, as the trainer does.
    let mut by_factor: BTreeMap<(usize, usize), Vec<f32>> = BTreeMap::new();
    let mut calls: BTreeMap<usize, usize> = BTreeMap::new();
    let mut collect = |i: usize, layer: &Qwen2DecoderLayer<TrainProjection>, g: &mut Gradients| {
        *calls.entry(i).or_default() += 1;
        for (j, p) in lora_ids(layer).into_iter().enumerate() {
            if let Some(grad) = p.grad_remove(g) {
                let grad = values(grad);
                match by_factor.get_mut(&(i, j)) {
                    Some(sum) => sum.iter_mut().zip(&grad).for_each(|(a, b)| *a += b),
                    None => {
                        by_factor.insert((i, j), grad);
                    }
                }
            }
        }
    };
    let (loss, input_grad) =
        forward_backward(llm, &batch, scale, CHUNKS, seed, &mut collect).unwrap();
    assert!(calls.values().all(|&n| n == 4), "{calls:?}");
    let factors = lora_ids(&llm.model.layers[0]).len();
    assert_eq!(by_factor.len(), llm.model.layers.len() * factors);
    let got: Vec<Vec<f32>> = by_factor.into_values().collect();

    // One ordinary backward through the whole graph, same dropout streams (the position-wise
    // part in the step's blocks, so the masks are drawn in the same order).
    let positions = sequential_positions(b, 0, s, &inner);
    let (cos, sin) = llm.model.rotary_emb.cos_sin(positions, DType::F32);
    let mask = attention_mask(b, s, 0, s, Some(padding), &inner).unwrap();
    let x0 = embeds.autodiff().require_grad();
    let mut x = x0.clone();
    for (i, layer) in llm.model.layers.iter().enumerate() {
        device.seed(layer_seed(seed, i));
        let [q, k, v] = layer.qkv(x.clone(), cos.clone().autodiff(), sin.clone().autodiff());
        let attn = attend(q, k, v, mask.clone().map(Tensor::autodiff));
        let blocks = [0..4, 4..8, 8..9].map(|r| {
            let (xr, ar) = (
                x.clone().slice_dim(1, r.clone()),
                attn.clone().slice_dim(1, r),
            );
            layer.finish(xr, ar)
        });
        x = Tensor::cat(blocks.to_vec(), 1);
    }
    let rows = supervised_rows(&labels, b, s);
    let index: Vec<i64> = rows.iter().map(|(r, _)| *r as i64).collect();
    let targets: Vec<i64> = rows.iter().map(|(_, t)| *t).collect();
    let n = rows.len();
    let hidden = x.reshape([b * s, h]).select(
        0,
        Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &inner).autodiff(),
    );
    let logits = llm.logits(llm.model.norm.forward(hidden.reshape([1, n, h])));
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &inner)
        .reshape([1, n, 1])
        .autodiff();
    let ce = log_softmax(logits, 2).gather(2, targets).sum().neg();
    let ce_value: f32 = ce.clone().inner().try_into_scalar().unwrap();
    let mut grads = ce.mul_scalar(scale).backward();
    let mut want: Vec<Vec<f32>> = Vec::new();
    for layer in &llm.model.layers {
        for p in lora_ids(layer) {
            want.push(values(p.grad_remove(&mut grads).unwrap()));
        }
    }

    // The input gradient the step returns (what a trainable projector backpropagates).
    let want_input = values(x0.grad_remove(&mut grads).unwrap().reshape([b * s, h]));
    let got_input = values(input_grad.reshape([b * s, h]));
    let input_scale = want_input.iter().fold(0f32, |m, v| m.max(v.abs()));
    let input_diff = got_input
        .iter()
        .zip(&want_input)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        input_scale > 0.0 && input_diff <= 1e-4 * input_scale,
        "input gradient: max diff {input_diff} (scale {input_scale})"
    );

    assert_eq!(loss.tokens, n);
    assert!((loss.ce_sum - f64::from(ce_value)).abs() <= 1e-4 * f64::from(ce_value).abs());
    assert_eq!(got.len(), want.len());
    let mut worst = 0f32;
    for (g, w) in got.iter().zip(&want) {
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        let diff = g.iter().zip(w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        worst = worst.max(diff / scale);
    }
    assert!(worst <= 1e-4, "LoRA gradients differ by {worst} (relative)");

    // Dropout is really on: another stream gives other gradients (same layout as `got`).
    let mut other: BTreeMap<(usize, usize), Vec<f32>> = BTreeMap::new();
    let mut collect = |i: usize, layer: &Qwen2DecoderLayer<TrainProjection>, g: &mut Gradients| {
        for (j, p) in lora_ids(layer).into_iter().enumerate() {
            if let Some(grad) = p.grad_remove(g) {
                other.insert((i, j), values(grad));
            }
        }
    };
    forward_backward(llm, &batch, scale, CHUNKS, seed + 1, &mut collect).unwrap();
    let other: Vec<Vec<f32>> = other.into_values().collect();
    assert_eq!(other.len(), got.len());
    let moved = other.iter().zip(&got).any(|(a, b)| {
        a.iter()
            .zip(b)
            .any(|(x, y)| (x - y).abs() > 1e-6 * y.abs().max(1.0))
    });
    assert!(
        moved,
        "a different dropout seed changed nothing: is dropout active?"
    );
}
