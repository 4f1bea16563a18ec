//! `KvCache`: per-layer keys and values of the tokens seen so far, for incremental decoding
//! (HF `DynamicCache`, `cache_utils.py`: keys are cached **after** RoPE).
//!
//! HF grows the cache by concatenation, one new key length per decode step. On CUDA every new
//! shape costs kernel compilation and autotuning, and concatenation copies the whole cache each
//! step, so a cache may instead keep its storage in blocks of `block` tokens: new keys are
//! written into place, and the attention sees the whole block-rounded key axis, the unused tail
//! masked by the causal mask (a key at position `j > past + i` is masked for every query `i`).
//! Masked keys get weight exactly 0 in the softmax, so the result equals the exact-length cache.

use burn::tensor::Tensor;

use crate::error::ModelError;

/// Keys and values of one layer.
#[derive(Clone, Debug)]
struct LayerKv {
    /// `[batch, kv_heads, capacity, head_dim]`, RoPE applied; positions `len..` are zeros.
    key: Tensor<4>,
    /// `[batch, kv_heads, capacity, head_dim]`.
    value: Tensor<4>,
    /// Tokens written.
    len: usize,
}

/// Keys and values for every layer; create with [`crate::text::Qwen2ForCausalLM::new_cache`].
///
/// Every forward pass that is given the cache appends its tokens, so the next pass's positions
/// start at [`KvCache::seq_len`]. A cache belongs to one batch of sequences.
#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    /// Storage grows in multiples of this many tokens; 1 = exact length (HF's behaviour).
    block: usize,
}

fn round_up(n: usize, block: usize) -> usize {
    n.div_ceil(block) * block
}

impl KvCache {
    /// An empty exact-length cache for `num_layers` decoder layers.
    pub fn new(num_layers: usize) -> KvCache {
        KvCache::with_block(num_layers, 1)
    }

    /// An empty cache whose storage grows in blocks of `block` tokens (0 is taken as 1).
    pub fn with_block(num_layers: usize, block: usize) -> KvCache {
        KvCache {
            layers: vec![None; num_layers],
            block: block.max(1),
        }
    }

    /// Decoder layers this cache is for.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Tokens cached so far (0 when empty).
    pub fn seq_len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |kv| kv.len)
    }

    /// Length of the key axis [`KvCache::append`] returns once `new` more tokens are appended:
    /// `seq_len() + new` for an exact cache, rounded up to the block otherwise.
    pub fn key_len_after(&self, new: usize) -> usize {
        let needed = self.seq_len() + new;
        if self.block == 1 {
            return needed;
        }
        let capacity = self
            .layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |kv| kv.key.dims()[2]);
        capacity.max(round_up(needed, self.block))
    }

    /// Batch size of the cached sequences, if any are cached.
    pub fn batch_size(&self) -> Option<usize> {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map(|kv| kv.key.dims()[0])
    }

    /// Forgets every cached token.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
    }

    /// Appends `key`/`value` to layer `layer_idx` and returns the layer's whole key/value
    /// storage: `cached + new` tokens, followed by zeros up to the block-rounded capacity
    /// ([`KvCache::key_len_after`]).
    ///
    /// # Shapes
    ///
    /// - key, value: `[batch, kv_heads, new, head_dim]`
    /// - outputs: `[batch, kv_heads, key_len_after(new), head_dim]`
    pub fn append(
        &mut self,
        layer_idx: usize,
        key: Tensor<4>,
        value: Tensor<4>,
    ) -> Result<(Tensor<4>, Tensor<4>), ModelError> {
        let n_layers = self.layers.len();
        let block = self.block;
        let slot = self.layers.get_mut(layer_idx).ok_or_else(|| {
            ModelError::Input(format!(
                "KV cache has {n_layers} layers, layer {layer_idx} asked for"
            ))
        })?;
        let [nb, nh, new, nd] = key.dims();
        if let Some(old) = slot.as_ref() {
            let [b, h, _, d] = old.key.dims();
            if (b, h, d) != (nb, nh, nd) {
                return Err(ModelError::Input(format!(
                    "KV cache layer {layer_idx} holds [batch {b}, kv_heads {h}, head_dim {d}], \
                     new keys are [batch {nb}, kv_heads {nh}, head_dim {nd}]"
                )));
            }
        }
        let merged = match slot.take() {
            None if block == 1 => LayerKv {
                key,
                value,
                len: new,
            },
            Some(old) if block == 1 => LayerKv {
                key: Tensor::cat(vec![old.key, key], 2),
                value: Tensor::cat(vec![old.value, value], 2),
                len: old.len + new,
            },
            old => {
                let len = old.as_ref().map_or(0, |kv| kv.len);
                let capacity = old.as_ref().map_or(0, |kv| kv.key.dims()[2]);
                let wanted = capacity.max(round_up(len + new, block));
                let device = key.device();
                let grow = |t: Option<Tensor<4>>, like: &Tensor<4>| {
                    let zeros = |n| Tensor::zeros([nb, nh, n, nd], (&device, like.dtype()));
                    match t {
                        None => zeros(wanted),
                        Some(t) if wanted > capacity => {
                            Tensor::cat(vec![t, zeros(wanted - capacity)], 2)
                        }
                        Some(t) => t,
                    }
                };
                let (old_k, old_v) = match old {
                    Some(kv) => (Some(kv.key), Some(kv.value)),
                    None => (None, None),
                };
                let at = [0..nb, 0..nh, len..len + new, 0..nd];
                LayerKv {
                    key: grow(old_k, &key).slice_assign(at.clone(), key),
                    value: grow(old_v, &value).slice_assign(at, value),
                    len: len + new,
                }
            }
        };
        let out = (merged.key.clone(), merged.value.clone());
        *slot = Some(merged);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{DType, Device};

    fn zeros(shape: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::zeros(shape, (device, DType::F32))
    }

    #[test]
    fn appends_along_the_sequence_and_keeps_state_on_error() {
        let device = Device::flex();
        let mut cache = KvCache::new(2);
        assert_eq!((cache.seq_len(), cache.batch_size()), (0, None));
        for layer in 0..2 {
            cache
                .append(
                    layer,
                    zeros([1, 2, 3, 4], &device),
                    zeros([1, 2, 3, 4], &device),
                )
                .unwrap();
        }
        let (k, v) = cache
            .append(
                0,
                zeros([1, 2, 1, 4], &device),
                zeros([1, 2, 1, 4], &device),
            )
            .unwrap();
        assert_eq!((k.dims(), v.dims()), ([1, 2, 4, 4], [1, 2, 4, 4]));
        assert_eq!(cache.seq_len(), 4);
        // A different batch is refused and the cached layer survives.
        let err = cache.append(
            0,
            zeros([2, 2, 1, 4], &device),
            zeros([2, 2, 1, 4], &device),
        );
        assert!(matches!(err, Err(ModelError::Input(_))));
        assert_eq!(cache.seq_len(), 4);
        assert!(
            cache
                .append(
                    2,
                    zeros([1, 2, 1, 4], &device),
                    zeros([1, 2, 1, 4], &device)
                )
                .is_err()
        );
        cache.clear();
        assert_eq!(cache.seq_len(), 0);
    }

    #[test]
    fn block_storage_rounds_up_and_writes_in_place() {
        let device = Device::flex();
        let filled = |n, v: f32| Tensor::<4>::full([1, 1, n, 2], v, (&device, DType::F32));
        let mut cache = KvCache::with_block(1, 4);
        assert_eq!(cache.key_len_after(3), 4);
        let (k, _) = cache.append(0, filled(3, 1.0), filled(3, 1.0)).unwrap();
        assert_eq!((k.dims(), cache.seq_len()), ([1, 1, 4, 2], 3));
        assert_eq!(cache.key_len_after(1), 4);
        let (k, _) = cache.append(0, filled(1, 2.0), filled(1, 2.0)).unwrap();
        assert_eq!(cache.key_len_after(1), 8);
        let (k2, v2) = cache.append(0, filled(1, 3.0), filled(1, 3.0)).unwrap();
        let got = k2.into_data().try_to_vec::<f32>().unwrap();
        let want = [1., 1., 1., 2., 3., 0., 0., 0.];
        let want: Vec<f32> = want.iter().flat_map(|&v| [v, v]).collect();
        assert_eq!(got, want);
        assert_eq!(
            (k.dims(), v2.dims(), cache.seq_len()),
            ([1, 1, 4, 2], [1, 1, 8, 2], 5)
        );
    }
}
