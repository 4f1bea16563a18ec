//! One micro-batch through the LLM, forward and backward, in bounded memory.
//!
//! **Layer-level activation checkpointing** (HF `gradient_checkpointing=True` recomputes each
//! decoder layer in backward; burn has no user-defined checkpoint regions, burn.md §7.4):
//! 1. the forward runs on the inference copy of the model (`Module::valid`: no graph at all) and
//!    keeps only each layer's input, `[batch, seq, hidden]` per layer;
//! 2. the loss head runs in chunks (below) and yields `∂loss/∂h_L`;
//! 3. for layer `i = L-1 … 0`, the layer runs again from its saved input (now a tracked leaf)
//!    on the training model, and `backward` of the surrogate `Σ out ⊙ g_{i+1}` (`g` detached)
//!    gives the layer's parameter gradients and `g_i = ∂loss/∂x_i`. Each layer's graph lives
//!    only for its own backward.
//!
//! **Chunked cross-entropy.** HF's `ForCausalLMLoss` upcasts the logits of every position to
//! f32 (`[batch, seq, vocab]`: 2.5 GB at 4096 × 152064) and sums the CE of shifted labels ≠ −100.
//! Only supervised positions contribute, so here the hidden rows at those positions are gathered
//! and pushed through final norm → `lm_head` → f32 log-softmax in chunks of `chunk_rows`, each
//! chunk with its own backward whose row gradients are added into `∂loss/∂h_L`. The same sum,
//! never more than one chunk of logits.
//!
//! The loss of a micro-batch is `Σ CE / num_items_in_batch` where `num_items_in_batch` counts
//! the supervised tokens of the whole **global** batch (all accumulation steps and ranks), as
//! VILA's patched `compute_loss` (nvila.md §3.4): a token mean over the global batch.

use burn::tensor::Gradients;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, DType, IndexingUpdateOp, Int, Tensor, TensorData};
use nvila_model::ModelError;
use nvila_model::text::attention::attention_mask;
use nvila_model::text::decoder::Qwen2DecoderLayer;
use nvila_model::text::rope::sequential_positions;
use nvila_model::text::{Projection, Qwen2ForCausalLM};

/// HF's `ignore_index`.
pub const IGNORE_INDEX: i64 = -100;

/// A micro-batch ready for the LLM.
#[derive(Clone, Debug)]
pub struct LlmBatch {
    /// Spliced input embeddings (text + image features), right-padded; no graph.
    /// `[batch, seq, hidden]`
    pub embeds: Tensor<3>,
    /// Labels aligned with `embeds` (unshifted, as HF), −100 where not supervised, row-major
    /// `batch × seq`.
    pub labels: Vec<i64>,
    /// Padded keys, `true` = padding (`attention_mask == 0`). `[batch, seq]`
    pub key_padding: Option<Tensor<2, Bool>>,
}

/// What a micro-batch contributed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MicroBatchLoss {
    /// `Σ` of token cross-entropies (nats), unscaled.
    pub ce_sum: f64,
    /// Supervised tokens (shifted labels ≠ −100).
    pub tokens: usize,
}

/// (flat row of the predicting position, target id) for every supervised token: position `t`
/// predicts label `t + 1` within its row (HF's shift).
pub fn supervised_rows(labels: &[i64], batch: usize, seq: usize) -> Vec<(usize, i64)> {
    let mut rows = Vec::new();
    for r in 0..batch {
        for t in 0..seq.saturating_sub(1) {
            let target = labels[r * seq + t + 1];
            if target != IGNORE_INDEX {
                rows.push((r * seq + t, target));
            }
        }
    }
    rows
}

/// SplitMix64's finalizer: spreads a combined seed over all 64 bits.
pub fn mix_seed(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Seed of layer `layer`'s dropout stream within a micro-batch whose stream is `seed`.
pub fn layer_seed(seed: u64, layer: usize) -> u64 {
    mix_seed(seed ^ (layer as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Runs `batch` forward and backward through `llm` (on an autodiff device, its trainable
/// parameters requiring grad), scaling the loss by `loss_scale` (`1 / num_items_in_batch`);
/// `seed` names the micro-batch's dropout streams.
/// After layer `i`'s backward, `collect(i, layer, grads)` takes that layer's parameter
/// gradients out of `grads` (e.g. with `param.val().grad_remove(grads)`).
///
/// # Shapes
///
/// - batch.embeds: `[batch, seq, hidden]`
/// - batch.labels: `batch * seq`
pub fn forward_backward<P: Projection>(
    llm: &Qwen2ForCausalLM<P>,
    batch: &LlmBatch,
    loss_scale: f32,
    chunk_rows: usize,
    seed: u64,
    collect: &mut dyn FnMut(usize, &Qwen2DecoderLayer<P>, &mut Gradients),
) -> Result<MicroBatchLoss, ModelError> {
    let [b, s, h] = batch.embeds.dims();
    if batch.labels.len() != b * s {
        return Err(ModelError::Input(format!(
            "{} labels for a [{b}, {s}] batch",
            batch.labels.len()
        )));
    }
    let vocab = llm.config.vocab_size as i64;
    let rows = supervised_rows(&batch.labels, b, s);
    if let Some((_, bad)) = rows.iter().find(|(_, t)| *t < 0 || *t >= vocab) {
        return Err(ModelError::Input(format!(
            "label {bad} is outside the vocabulary 0..{vocab}"
        )));
    }

    // 1. Forward without a graph, keeping each layer's input.
    // The first pass runs the training model (so LoRA dropout is active, as in the recompute)
    // but detaches each layer's output, so no layer's graph outlives its own call. Each layer
    // draws its dropout masks from a stream seeded from (`seed`, layer) in both passes, so the
    // recompute sees exactly the masks of the first pass (torch's checkpoint does the same by
    // saving and restoring the RNG state, `preserve_rng_state=True`).
    let ad_device = llm.model.norm.weight.val().device();
    let device = ad_device.clone().without_autodiff();
    let x0 = batch.embeds.clone().inner().to_device(&device);
    let dtype = x0.dtype();
    let positions = sequential_positions(b, 0, s, &device);
    let (cos, sin) = llm.model.rotary_emb.cos_sin(positions, dtype);
    let padding = batch
        .key_padding
        .clone()
        .map(|p| p.inner().to_device(&device));
    let mask = attention_mask(b, s, 0, s, padding, &device)?;
    let (cos_ad, sin_ad) = (cos.autodiff(), sin.autodiff());
    let mask_ad = mask.map(Tensor::autodiff);
    let mut inputs = Vec::with_capacity(llm.model.layers.len());
    let mut x = x0;
    for (i, layer) in llm.model.layers.iter().enumerate() {
        inputs.push(x.clone());
        ad_device.seed(layer_seed(seed, i));
        let out = layer.forward(
            x.autodiff(),
            cos_ad.clone(),
            sin_ad.clone(),
            mask_ad.clone(),
            None,
        )?;
        x = out.detach().inner();
    }

    // 2. Chunked loss head → ∂loss/∂h_L.
    let flat = x.reshape([b * s, h]);
    let mut grad = Tensor::<2>::zeros([b * s, h], (&device, dtype));
    let mut ce_sum = 0.0f64;
    for chunk in rows.chunks(chunk_rows.max(1)) {
        let n = chunk.len();
        let index: Vec<i64> = chunk.iter().map(|(row, _)| *row as i64).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &device);
        let targets: Vec<i64> = chunk.iter().map(|(_, t)| *t).collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &device)
            .reshape([1, n, 1])
            .autodiff();
        let hidden = flat
            .clone()
            .select(0, index.clone())
            .autodiff()
            .require_grad();
        let normed = llm.model.norm.forward(hidden.clone().reshape([1, n, h]));
        let logits = llm.logits(normed).cast(DType::F32);
        let picked = log_softmax(logits, 2).gather(2, targets); // [1, n, 1]
        let chunk_ce = picked.sum().neg();
        let value: f32 = chunk_ce
            .clone()
            .inner()
            .try_into_scalar::<f32>()
            .map_err(|e| ModelError::Input(format!("loss could not be read: {e:?}")))?;
        ce_sum += f64::from(value);
        let grads = chunk_ce.mul_scalar(loss_scale).backward();
        let row_grad = hidden
            .grad(&grads)
            .ok_or_else(|| ModelError::Input("the loss head produced no gradient".into()))?;
        grad = grad.select_assign(0, index, row_grad.cast(dtype), IndexingUpdateOp::Add);
    }

    // 3. Layers in reverse, each recomputed from its saved input with its dropout stream.
    let (cos, sin, mask) = (cos_ad, sin_ad, mask_ad);
    let mut grad = grad.reshape([b, s, h]);
    for (i, layer) in llm.model.layers.iter().enumerate().rev() {
        let input = inputs
            .pop()
            .ok_or_else(|| ModelError::Input("layer inputs exhausted".into()))?
            .autodiff()
            .require_grad();
        ad_device.seed(layer_seed(seed, i));
        let out = layer.forward(input.clone(), cos.clone(), sin.clone(), mask.clone(), None)?;
        let mut grads = (out * grad.autodiff()).sum().backward();
        collect(i, layer, &mut grads);
        grad = match input.grad_remove(&mut grads) {
            Some(g) => g,
            None => break, // nothing below depends on trainable parameters through this input
        };
    }
    Ok(MicroBatchLoss {
        ce_sum,
        tokens: rows.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervised_rows_shift_labels_by_one_within_each_row() {
        // Row 0 supervises labels at t = 2, 3 (predicted from 1, 2); row 1 at t = 1.
        let labels = [-100, -100, 7, 8, -100, 5, -100, -100];
        assert_eq!(supervised_rows(&labels, 2, 4), vec![(1, 7), (2, 8), (4, 5)]);
        // A label at position 0 has no predicting position.
        assert!(supervised_rows(&[3, -100], 1, 2).is_empty());
    }
}
