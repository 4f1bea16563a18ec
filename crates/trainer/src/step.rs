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
//! **Attention in query blocks.** The f32 attention scores of a whole layer are
//! `[batch, heads, seq, seq]` (1.9 GB at 4096 tokens × 28 heads, and autodiff keeps several such
//! tensors for the softmax's backward). So each layer runs in three stages
//! ([`Qwen2DecoderLayer::qkv`], [`attend`], [`Qwen2DecoderLayer::finish`]): the projections
//! before and after the attention core keep a graph; the core itself runs without one, in blocks
//! of `attention_queries` queries, and in backward each block is recomputed with its own small
//! graph, its key and value gradients summed in f32. Every query row sees all its keys, so this
//! is the same attention, never more than one block of scores alive. The projections after the
//! core (o_proj, the MLP) act on each position alone, so stage C runs in blocks of `layer_rows`
//! positions, each with its own graph (the first pass uses the same blocks, so LoRA dropout
//! draws the same masks): one block of `[rows, intermediate]` MLP activations alive, not the
//! whole sequence's.
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

use burn::module::Module;
use burn::tensor::Gradients;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, DType, IndexingUpdateOp, Int, Tensor, TensorData};
use nvila_model::ModelError;
use nvila_model::text::attention::{attend, attend_in_chunks, attention_mask};
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

/// Block sizes that bound a step's activation memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunks {
    /// Rows of the loss head computed at once (`[rows, vocab]` f32 logits per chunk).
    pub loss_rows: usize,
    /// Queries per attention block (`[batch, heads, queries, seq]` f32 scores per block).
    pub attention_queries: usize,
    /// Positions per block of the position-wise part of a layer (o_proj, the MLP:
    /// `[batch, rows, intermediate]` activations per block).
    pub layer_rows: usize,
}

impl Default for Chunks {
    /// 256 rows of loss head (256 × 152064 f32 logits = 0.16 GB, three such tensors live),
    /// 512 queries per attention block (28 heads × 512 × 4096 f32 = 0.23 GB per tensor) and
    /// 1024 positions per MLP block (1024 × 18944 bf16 = 39 MB per tensor instead of 155 MB).
    fn default() -> Self {
        Chunks {
            loss_rows: 256,
            attention_queries: 512,
            layer_rows: 1024,
        }
    }
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
/// returns the loss and `∂(scaled loss)/∂embeds` (for trainable parts before the LLM: the
/// projector);
/// `seed` names the micro-batch's dropout streams, `chunks` bounds the activation memory.
/// During layer `i`'s backward, `collect(i, layer, grads)` takes that layer's parameter
/// gradients out of `grads` (e.g. with `param.val().grad_remove(grads)`) and must **add** them
/// to what it has: it is called once per block of positions of the projections after the
/// attention core (each call holds those parameters' gradient for that block), then once for
/// the projections before it.
///
/// # Shapes
///
/// - batch.embeds: `[batch, seq, hidden]`
/// - batch.labels: `batch * seq`
/// - returned input gradient: `[batch, seq, hidden]` (no graph, the embeddings' dtype)
pub fn forward_backward<P: Projection>(
    llm: &Qwen2ForCausalLM<P>,
    batch: &LlmBatch,
    loss_scale: f32,
    chunks: Chunks,
    seed: u64,
    collect: &mut dyn FnMut(usize, &Qwen2DecoderLayer<P>, &mut Gradients),
) -> Result<(MicroBatchLoss, Tensor<3>), ModelError>
where
    Qwen2ForCausalLM<P>: Module,
{
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
    let queries = chunks.attention_queries.max(1);
    let rows_per_block = chunks.layer_rows.max(1);

    // 1. Forward without a kept graph, keeping each layer's input.
    // The first pass runs the training model (so LoRA dropout is active, as in the recompute)
    // but drops each layer's graph before the next layer. Each layer draws its dropout masks
    // from a stream seeded from (`seed`, layer) in both passes, in the same order (q, k, v, then
    // o, gate, up, down), so the recompute sees exactly the masks of the first pass (torch's
    // checkpoint does the same by saving and restoring the RNG state, `preserve_rng_state`).
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
    let (cos, sin) = (cos.autodiff(), sin.autodiff());
    let mask = mask.map(Tensor::autodiff);
    let mut inputs = Vec::with_capacity(llm.model.layers.len());
    let mut x = x0;
    // The first pass must record no graph at all. burn's autodiff frees the steps of tensors
    // dropped without a backward only when a later `backward` sweeps orphans (burn-autodiff
    // 0.22.1 `runtime/graph.rs`, `cleanup_orphaned_entries`), so a tracked first pass kept
    // every layer's saved activations alive to its end: 52.8 GB on the H200 at the 8B shape
    // instead of the ~18 GB planned (docs/gpu.md, 2026-11-30). A copy whose parameters
    // require no gradient runs untracked on the same autodiff device, where LoRA dropout is
    // active and draws the same masks from the same seeded stream.
    let untracked = llm.clone().no_grad();
    for (i, layer) in untracked.model.layers.iter().enumerate() {
        inputs.push(x.clone());
        ad_device.seed(layer_seed(seed, i));
        let xa = x.autodiff();
        let [q, k, v] = layer.qkv(xa.clone(), cos.clone(), sin.clone());
        let attn = attend_in_chunks(q.detach(), k.detach(), v.detach(), mask.clone(), queries);
        // Position-wise, so in blocks; the recompute runs the same blocks in the same order, so
        // LoRA dropout draws the same masks.
        let outs = row_blocks(s, rows_per_block)
            .map(|r| {
                let (xr, ar) = (
                    xa.clone().slice_dim(1, r.clone()),
                    attn.clone().slice_dim(1, r),
                );
                layer.finish(xr, ar).detach().inner()
            })
            .collect();
        x = Tensor::cat(outs, 1);
    }

    crate::metrics::log_device_memory(&device, "after the first pass", tracing::Level::DEBUG);

    // 2. Chunked loss head → ∂loss/∂h_L.
    let flat = x.reshape([b * s, h]);
    let mut grad = Tensor::<2>::zeros([b * s, h], (&device, dtype));
    let mut ce_sum = 0.0f64;
    for chunk in rows.chunks(chunks.loss_rows.max(1)) {
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

    crate::metrics::log_device_memory(&device, "after the loss head", tracing::Level::DEBUG);

    // 3. Layers in reverse, each recomputed from its saved input with its dropout stream.
    let mut grad = grad.reshape([b, s, h]);
    for (i, layer) in llm.model.layers.iter().enumerate().rev() {
        let input = inputs
            .pop()
            .ok_or_else(|| ModelError::Input("layer inputs exhausted".into()))?;
        ad_device.seed(layer_seed(seed, i));
        // Stage A keeps the graph input → q, k, v; the core runs without a graph.
        let x_a = input.clone().autodiff().require_grad();
        let [q, k, v] = layer.qkv(x_a.clone(), cos.clone(), sin.clone());
        let qkv = [q.clone().detach(), k.clone().detach(), v.clone().detach()];
        let [qd, kd, vd] = qkv.clone();
        let attn = attend_in_chunks(qd, kd, vd, mask.clone(), queries);
        // Stage C: (input, attention) → output and its backward, position-wise, so one block of
        // positions at a time, each with its own small graph.
        let (mut g_attn, mut g_residual) = (Vec::new(), Vec::new());
        for r in row_blocks(s, rows_per_block) {
            let x_c = input
                .clone()
                .slice_dim(1, r.clone())
                .autodiff()
                .require_grad();
            let a_c = attn.clone().slice_dim(1, r.clone()).require_grad();
            let out = layer.finish(x_c.clone(), a_c.clone());
            let g_out = grad.clone().slice_dim(1, r).autodiff();
            let mut grads = (out * g_out).sum().backward();
            collect(i, layer, &mut grads);
            g_attn.push(
                a_c.grad_remove(&mut grads)
                    .ok_or_else(|| no_grad(i, "attention"))?,
            );
            g_residual.push(
                x_c.grad_remove(&mut grads)
                    .ok_or_else(|| no_grad(i, "input"))?,
            );
        }
        let (g_attn, g_residual) = (Tensor::cat(g_attn, 1), Tensor::cat(g_residual, 1));
        // Stage B: the core's backward, one query block at a time.
        let [gq, gk, gv] = attention_backward(qkv, mask.clone(), g_attn, queries, i)?;
        // Stage A's backward.
        let surrogate =
            (q * gq.autodiff()).sum() + (k * gk.autodiff()).sum() + (v * gv.autodiff()).sum();
        let mut grads = surrogate.backward();
        collect(i, layer, &mut grads);
        let g_qkv = x_a
            .grad_remove(&mut grads)
            .ok_or_else(|| no_grad(i, "input"))?;
        grad = g_residual + g_qkv;
    }
    let loss = MicroBatchLoss {
        ce_sum,
        tokens: rows.len(),
    };
    Ok((loss, grad))
}

/// Gradients of `Σ attend(q, k, v) ⊙ g_out` with respect to q, k, v, recomputing the attention
/// core in blocks of `queries` queries. Key and value gradients are summed over the blocks in
/// f32 and cast back once, as one matmul over all queries would accumulate them.
///
/// # Shapes
///
/// - qkv: q `[batch, heads, seq, head_dim]`; k, v `[batch, kv_heads, seq, head_dim]` (no graph)
/// - mask: `[batch, 1, seq, seq]`
/// - g_out: `[batch, seq, heads * head_dim]`
/// - output: gradients shaped as q, k, v
fn attention_backward(
    qkv: [Tensor<4>; 3],
    mask: Option<Tensor<4, Bool>>,
    g_out: Tensor<3>,
    queries: usize,
    layer: usize,
) -> Result<[Tensor<4>; 3], ModelError> {
    let [q, k, v] = qkv;
    let s = q.dims()[2];
    let dtype = k.dtype();
    let mut gq = Vec::new();
    let mut gk: Option<Tensor<4>> = None;
    let mut gv: Option<Tensor<4>> = None;
    for start in (0..s).step_by(queries) {
        let range = start..(start + queries).min(s);
        let qb = q.clone().slice_dim(2, range.clone()).require_grad();
        let (kb, vb) = (k.clone().require_grad(), v.clone().require_grad());
        let out = attend(
            qb.clone(),
            kb.clone(),
            vb.clone(),
            mask.clone().map(|m| m.slice_dim(2, range.clone())),
        );
        let g = g_out.clone().slice_dim(1, range).autodiff();
        let mut grads = (out * g).sum().backward();
        let attention = || no_grad(layer, "attention block");
        gq.push(qb.grad_remove(&mut grads).ok_or_else(attention)?);
        let add = |acc: Option<Tensor<4>>, g: Tensor<4>| {
            let g = g.cast(DType::F32);
            Some(match acc {
                Some(acc) => acc + g,
                None => g,
            })
        };
        gk = add(gk, kb.grad_remove(&mut grads).ok_or_else(attention)?);
        gv = add(gv, vb.grad_remove(&mut grads).ok_or_else(attention)?);
    }
    let gk = gk.ok_or_else(|| no_grad(layer, "keys"))?.cast(dtype);
    let gv = gv.ok_or_else(|| no_grad(layer, "values"))?.cast(dtype);
    Ok([Tensor::cat(gq, 2), gk, gv])
}

/// `0..seq` in blocks of `rows`.
fn row_blocks(seq: usize, rows: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..seq)
        .step_by(rows)
        .map(move |start| start..(start + rows).min(seq))
}

fn no_grad(layer: usize, what: &str) -> ModelError {
    ModelError::Input(format!(
        "layer {layer}: the recompute gave no gradient for its {what}"
    ))
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
