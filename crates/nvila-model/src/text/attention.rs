//! `Qwen2Attention` (`modeling_qwen2.py`): q/k/v projections with bias, o_proj without, RoPE on
//! q and k, grouped-query attention, and the mask built here explicitly.
//!
//! Numerics, compared with HF:
//! - **Scores and softmax in f32.** HF eager (`eager_attention_forward`) computes `q @ kᵀ` in the
//!   activation dtype, multiplies by `head_dim^-0.5`, adds the mask, and takes the softmax in f32
//!   before casting the probabilities back; `sdpa` on GPU keeps f32 accumulators inside the
//!   kernel. Here q and k are cast to f32 for `q @ kᵀ`, so in f32 models this is eager's
//!   computation exactly and in bf16 models it sits between eager (bf16 scores) and sdpa. The
//!   probabilities are cast back to the activation dtype and `probs @ v` runs in it, as in eager.
//! - **Masking.** Masked scores are set to `f32::MIN`, which is what eager's additive mask
//!   (`torch.finfo(float32).min`, `masking_utils.py`) yields after rounding, so a query row
//!   whose keys are all masked gets uniform weights in both (burn's `attention` would give zeros).
//!   burn's `is_causal` flag is never used (it hangs on CUDA, see burn.md §5); the causal mask is
//!   built on the host.
//! - **GQA.** HF `repeat_kv` copies each KV head to `num_key_value_groups` consecutive query
//!   heads. Here the query heads of one group are folded into the query axis instead
//!   (`[b, kv_heads, groups * seq, d]`), which multiplies by the same key rows without copying
//!   the keys; query head `h` uses KV head `h / groups` in both.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, DType, Device, Tensor, TensorData};

use crate::error::ModelError;
use crate::text::cache::KvCache;
use crate::text::config::Qwen2Config;
use crate::text::projection::Projection;
use crate::text::rope::apply_rotary;
use crate::weights::Weights;

/// Queries per attention block in [`Qwen2Attention::core`]: a 4096-token prefill of the 8B
/// shape holds `[28, 1024, 4096]` f32 scores (0.47 GB) at a time instead of 1.9 GB.
pub const QUERY_BLOCK: usize = 1024;

/// Multi-head self-attention with grouped key/value heads.
#[derive(Module, Debug)]
pub struct Qwen2Attention<P: Projection = Linear> {
    /// `[hidden, heads * head_dim]`, with bias.
    pub q_proj: P,
    /// `[hidden, kv_heads * head_dim]`, with bias.
    pub k_proj: P,
    /// `[hidden, kv_heads * head_dim]`, with bias.
    pub v_proj: P,
    /// `[heads * head_dim, hidden]`, no bias.
    pub o_proj: P,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl Qwen2Attention {
    /// Loads `q_proj`, `k_proj`, `v_proj`, `o_proj` from `w` (prefixed with `...self_attn`).
    pub fn load(w: &Weights, config: &Qwen2Config) -> Result<Qwen2Attention, ModelError> {
        let h = config.hidden_size;
        let q = config.num_attention_heads * config.head_dim;
        let kv = config.num_key_value_heads * config.head_dim;
        Ok(Qwen2Attention {
            q_proj: w.linear("q_proj", h, q, true)?,
            k_proj: w.linear("k_proj", h, kv, true)?,
            v_proj: w.linear("v_proj", h, kv, true)?,
            o_proj: w.linear("o_proj", q, h, false)?,
            num_heads: config.num_attention_heads,
            num_kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
        })
    }
}

impl<P: Projection> Qwen2Attention<P> {
    /// Replaces each projection by `f(path, projection)`, `path` being `prefix.q_proj` etc.
    pub fn map_projections<Q: Projection, E>(
        self,
        prefix: &str,
        f: &mut impl FnMut(&str, P) -> Result<Q, E>,
    ) -> Result<Qwen2Attention<Q>, E> {
        Ok(Qwen2Attention {
            q_proj: f(&format!("{prefix}.q_proj"), self.q_proj)?,
            k_proj: f(&format!("{prefix}.k_proj"), self.k_proj)?,
            v_proj: f(&format!("{prefix}.v_proj"), self.v_proj)?,
            o_proj: f(&format!("{prefix}.o_proj"), self.o_proj)?,
            num_heads: self.num_heads,
            num_kv_heads: self.num_kv_heads,
            head_dim: self.head_dim,
        })
    }

    /// Queries, keys and values of `x`, RoPE applied.
    ///
    /// # Shapes
    ///
    /// - x: `[batch, seq, hidden]`
    /// - cos, sin: `[batch, 1, seq, head_dim]` (from [`crate::text::rope::RotaryEmbedding`])
    /// - output: q `[batch, heads, seq, head_dim]`; k, v `[batch, kv_heads, seq, head_dim]`
    pub fn qkv(&self, x: Tensor<3>, cos: Tensor<4>, sin: Tensor<4>) -> [Tensor<4>; 3] {
        let [b, s, _] = x.dims();
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let heads = |t: Tensor<3>, n: usize| t.reshape([b, s, n, hd]).swap_dims(1, 2);
        let q = heads(self.q_proj.forward(x.clone()), nh);
        let k = heads(self.k_proj.forward(x.clone()), nkv);
        let v = heads(self.v_proj.forward(x), nkv);
        [
            apply_rotary(q, cos.clone(), sin.clone()),
            apply_rotary(k, cos, sin),
            v,
        ]
    }

    /// The attention of `x` before `o_proj` (which [`crate::text::decoder::Qwen2DecoderLayer::finish`]
    /// applies): to the cached keys (if any) plus `x`'s own,
    /// appending `x`'s keys and values to layer `layer_idx` of `cache`.
    ///
    /// # Shapes
    ///
    /// - x: `[batch, seq, hidden]`
    /// - cos, sin: `[batch, 1, seq, head_dim]`
    /// - mask: `[batch, 1, seq, key_len]` (`key_len` = what the cache returns, else `seq`),
    ///   `true` = masked; `None` attends to every key
    /// - output: `[batch, seq, heads * head_dim]`
    pub fn core(
        &self,
        x: Tensor<3>,
        cos: Tensor<4>,
        sin: Tensor<4>,
        mask: Option<Tensor<4, Bool>>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor<3>, ModelError> {
        let [q, k, v] = self.qkv(x, cos, sin);
        let (k, v) = match cache {
            Some((cache, layer_idx)) => cache.append(layer_idx, k, v)?,
            None => (k, v),
        };
        Ok(attend_in_chunks(q, k, v, mask, QUERY_BLOCK))
    }
}

/// Scaled dot-product attention of the queries over the keys (numerics and GQA folding in the
/// module docs); the heads come out concatenated, ready for `o_proj`.
///
/// # Shapes
///
/// - q: `[batch, heads, seq, head_dim]`
/// - k, v: `[batch, kv_heads, key_len, head_dim]`
/// - mask: `[batch, 1, seq, key_len]`, `true` = masked
/// - output: `[batch, seq, heads * head_dim]`
pub fn attend(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<Tensor<4, Bool>>,
) -> Tensor<3> {
    let [b, nh, s, hd] = q.dims();
    let [_, nkv, sk, _] = k.dims();
    let groups = nh / nkv;
    let dtype = v.dtype();
    // Group g's query heads are g*groups..(g+1)*groups, contiguous, so this reshape folds
    // them into the query axis: [b, nkv, groups * s, hd].
    let q = q.cast(DType::F32).reshape([b, nkv, groups * s, hd]);
    let scores = q.matmul(k.cast(DType::F32).swap_dims(2, 3)); // [b, nkv, groups*s, sk]
    let scale = (hd as f64).powf(-0.5);
    let scores = scores.mul_scalar(scale).reshape([b, nh, s, sk]);
    let scores = match mask {
        Some(mask) => scores.mask_fill(mask.expand([b, nh, s, sk]), f32::MIN),
        None => scores,
    };
    let probs = softmax(scores, 3)
        .cast(dtype)
        .reshape([b, nkv, groups * s, sk]);
    let out = probs.matmul(v).reshape([b, nh, s, hd]);
    out.swap_dims(1, 2).reshape([b, s, nh * hd])
}

/// [`attend`] over blocks of at most `queries` queries, concatenated: each query row is
/// computed exactly as in one call, but the `[batch, heads, queries, key_len]` f32 scores of
/// only one block exist at a time (at 4096 tokens and 28 heads the whole score matrix is
/// 1.9 GB in f32).
///
/// # Shapes
///
/// - q: `[batch, heads, seq, head_dim]`
/// - k, v: `[batch, kv_heads, key_len, head_dim]`
/// - mask: `[batch, 1, seq, key_len]`, `true` = masked
/// - output: `[batch, seq, heads * head_dim]`
pub fn attend_in_chunks(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<Tensor<4, Bool>>,
    queries: usize,
) -> Tensor<3> {
    let s = q.dims()[2];
    let queries = queries.max(1);
    if s <= queries {
        return attend(q, k, v, mask);
    }
    let blocks = (0..s)
        .step_by(queries)
        .map(|start| {
            let range = start..(start + queries).min(s);
            attend(
                q.clone().slice_dim(2, range.clone()),
                k.clone(),
                v.clone(),
                mask.clone().map(|m| m.slice_dim(2, range)),
            )
        })
        .collect();
    Tensor::cat(blocks, 1)
}

/// The attention mask for `seq` new queries after `past` cached tokens over a key axis of
/// `key_len ≥ past + seq` (longer when a block cache carries an unused tail): causal, aligned
/// bottom-right (query `i` sees keys `0..=past + i`, so the tail is always masked), plus padded
/// keys. `true` = masked.
///
/// `key_padding` marks padded keys over the cached and new tokens, `[batch, past + seq]`, `true`
/// = padding (HF's `attention_mask == 0`). Returns `None` when nothing needs masking (one query,
/// no padding, no tail), which lets decode steps skip the mask.
///
/// # Shapes
///
/// - key_padding: `[batch, past + seq]`
/// - output: `[batch, 1, seq, key_len]`
pub fn attention_mask(
    batch: usize,
    seq: usize,
    past: usize,
    key_len: usize,
    key_padding: Option<Tensor<2, Bool>>,
    device: &Device,
) -> Result<Option<Tensor<4, Bool>>, ModelError> {
    let used = past + seq;
    if key_len < used {
        return Err(ModelError::Input(format!(
            "key axis of {key_len} is shorter than cached {past} + new {seq}"
        )));
    }
    if let Some(p) = key_padding.as_ref().filter(|p| p.dims() != [batch, used]) {
        return Err(ModelError::Input(format!(
            "key padding mask is {:?}, expected [batch {batch}, cached {past} + new {seq}]",
            p.dims()
        )));
    }
    if seq == 1 && key_padding.is_none() && key_len == used {
        return Ok(None);
    }
    let sk = key_len;
    // Padding of the unused tail: those keys are masked by the causal part already.
    let key_padding = key_padding.map(|p| {
        if sk == used {
            p
        } else {
            let tail = Tensor::<2, Bool>::full([batch, sk - used], true, device);
            Tensor::cat(vec![p, tail], 1)
        }
    });
    // Built from host data: the device-side triangular-mask path is untested on CUDA (burn.md §5).
    let causal: Vec<bool> = (0..seq)
        .flat_map(|i| (0..sk).map(move |j| j > past + i))
        .collect();
    let causal = Tensor::<2, Bool>::from_data(TensorData::new(causal, [seq, sk]), device)
        .reshape([1, 1, seq, sk])
        .expand([batch, 1, seq, sk]);
    Ok(Some(match key_padding {
        Some(p) => causal.bool_or(p.reshape([batch, 1, 1, sk]).expand([batch, 1, seq, sk])),
        None => causal,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_in_query_blocks_equals_one_call() {
        let device = Device::flex();
        let normal = burn::tensor::Distribution::Normal(0.0, 1.0);
        // GQA (4 query heads over 2 KV heads), 7 queries, two rows, the second padded.
        let (b, nh, nkv, s, hd) = (2, 4, 2, 7, 8);
        let q = Tensor::<4>::random([b, nh, s, hd], normal, &device);
        let k = Tensor::<4>::random([b, nkv, s, hd], normal, &device);
        let v = Tensor::<4>::random([b, nkv, s, hd], normal, &device);
        let pad: Vec<bool> = (0..b * s).map(|i| i / s == 1 && i % s >= 5).collect();
        let pad = Tensor::<2, Bool>::from_data(TensorData::new(pad, [b, s]), &device);
        let mask = attention_mask(b, s, 0, s, Some(pad), &device).unwrap();
        let whole = attend(q.clone(), k.clone(), v.clone(), mask.clone());
        assert_eq!(whole.dims(), [b, s, nh * hd]);
        let whole = whole.into_data().try_into_vec::<f32>().unwrap();
        for queries in [1, 3, 7, 100] {
            let blocks = attend_in_chunks(q.clone(), k.clone(), v.clone(), mask.clone(), queries);
            let blocks = blocks.into_data().try_into_vec::<f32>().unwrap();
            let diff = whole
                .iter()
                .zip(&blocks)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff <= 1e-6, "blocks of {queries}: max difference {diff}");
        }
    }

    #[test]
    fn causal_mask_is_bottom_right_aligned() {
        let device = Device::flex();
        let mask = attention_mask(1, 2, 1, 3, None, &device).unwrap().unwrap();
        let got = mask.into_data().try_into_vec::<bool>().unwrap();
        // Query 0 (position 1) sees keys 0, 1; query 1 sees all three.
        assert_eq!(got, vec![false, false, true, false, false, false]);
        assert!(attention_mask(2, 1, 5, 6, None, &device).unwrap().is_none());
    }

    #[test]
    fn padding_mask_masks_keys_for_every_query() {
        let device = Device::flex();
        let pad = Tensor::<2, Bool>::from_data(TensorData::new(vec![false, true], [1, 2]), &device);
        let mask = attention_mask(1, 2, 0, 2, Some(pad), &device)
            .unwrap()
            .unwrap();
        assert_eq!(
            mask.into_data().try_into_vec::<bool>().unwrap(),
            vec![false, true, false, true]
        );
        let wrong = Tensor::<2, Bool>::from_data(TensorData::new(vec![false; 3], [1, 3]), &device);
        assert!(attention_mask(1, 2, 0, 2, Some(wrong), &device).is_err());
    }

    #[test]
    fn block_tail_is_masked_even_for_one_query() {
        let device = Device::flex();
        let mask = attention_mask(1, 1, 2, 4, None, &device).unwrap().unwrap();
        let got = mask.into_data().try_into_vec::<bool>().unwrap();
        assert_eq!(got, vec![false, false, false, true]);
        let pad = Tensor::<2, Bool>::from_data(TensorData::new(vec![true, false], [1, 2]), &device);
        let mask = attention_mask(1, 2, 0, 4, Some(pad), &device)
            .unwrap()
            .unwrap();
        let got = mask.into_data().try_into_vec::<bool>().unwrap();
        // Query 0 sees key 0 only (padding); query 1 sees key 1; the tail is masked for both.
        assert_eq!(got, vec![true, true, true, true, true, false, true, true]);
        assert!(attention_mask(1, 2, 1, 2, None, &device).is_err());
    }
}
