//! `KvCache`: per-layer keys and values of the tokens seen so far, for incremental decoding
//! (HF `DynamicCache`, `cache_utils.py`: keys are cached **after** RoPE and grow by
//! concatenation along the sequence axis).

use burn::tensor::Tensor;

use crate::error::ModelError;

/// Keys and values of one layer.
#[derive(Clone, Debug)]
struct LayerKv {
    /// `[batch, kv_heads, seq, head_dim]`, RoPE applied.
    key: Tensor<4>,
    /// `[batch, kv_heads, seq, head_dim]`.
    value: Tensor<4>,
}

/// Keys and values for every layer; create with [`crate::text::Qwen2ForCausalLM::new_cache`].
///
/// Every forward pass that is given the cache appends its tokens, so the next pass's positions
/// start at [`KvCache::seq_len`]. A cache belongs to one batch of sequences.
#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
}

impl KvCache {
    /// An empty cache for `num_layers` decoder layers.
    pub fn new(num_layers: usize) -> KvCache {
        KvCache {
            layers: vec![None; num_layers],
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
            .map_or(0, |kv| kv.key.dims()[2])
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

    /// Appends `key`/`value` to layer `layer_idx` and returns the whole cached key/value.
    ///
    /// # Shapes
    ///
    /// - key, value: `[batch, kv_heads, new, head_dim]`
    /// - outputs: `[batch, kv_heads, cached + new, head_dim]`
    pub fn append(
        &mut self,
        layer_idx: usize,
        key: Tensor<4>,
        value: Tensor<4>,
    ) -> Result<(Tensor<4>, Tensor<4>), ModelError> {
        let n_layers = self.layers.len();
        let slot = self.layers.get_mut(layer_idx).ok_or_else(|| {
            ModelError::Input(format!(
                "KV cache has {n_layers} layers, layer {layer_idx} asked for"
            ))
        })?;
        if let Some(old) = slot.as_ref() {
            let [b, h, _, d] = old.key.dims();
            let [nb, nh, _, nd] = key.dims();
            if (b, h, d) != (nb, nh, nd) {
                return Err(ModelError::Input(format!(
                    "KV cache layer {layer_idx} holds [batch {b}, kv_heads {h}, head_dim {d}], \
                     new keys are [batch {nb}, kv_heads {nh}, head_dim {nd}]"
                )));
            }
        }
        let merged = match slot.take() {
            None => LayerKv { key, value },
            Some(old) => LayerKv {
                key: Tensor::cat(vec![old.key, key], 2),
                value: Tensor::cat(vec![old.value, value], 2),
            },
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
}
