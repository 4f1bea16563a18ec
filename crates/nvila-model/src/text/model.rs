//! `Qwen2Model` (embeddings, decoder layers, final norm) and `Qwen2ForCausalLM` (plus `lm_head`),
//! as in `modeling_qwen2.py`, with fields named like the checkpoint keys (`model.embed_tokens`,
//! `model.layers.N`, `model.norm`, `lm_head`).

use std::path::Path;

use burn::module::Module;
use burn::nn::{Embedding, Linear};
use burn::tensor::module::linear;
use burn::tensor::{Bool, DType, Device, Int, Tensor};

use crate::error::ModelError;
use crate::text::attention::attention_mask;
use crate::text::cache::KvCache;
use crate::text::config::Qwen2Config;
use crate::text::decoder::Qwen2DecoderLayer;
use crate::text::projection::Projection;
use crate::text::rms_norm::Qwen2RmsNorm;
use crate::text::rope::{RotaryEmbedding, sequential_positions};
use crate::weights::Weights;

/// Block size of [`Qwen2ForCausalLM::new_cache`], in tokens.
pub const KV_BLOCK: usize = 256;

/// The decoder stack without the output head (HF `Qwen2Model`, checkpoint prefix `model`).
#[derive(Module, Debug)]
pub struct Qwen2Model<P: Projection = Linear> {
    /// Token embeddings, weight `[vocab, hidden]`.
    pub embed_tokens: Embedding,
    /// `num_hidden_layers` decoder layers.
    pub layers: Vec<Qwen2DecoderLayer<P>>,
    /// Final RMSNorm, weight `[hidden]`.
    pub norm: Qwen2RmsNorm,
    /// RoPE frequencies (not a checkpoint tensor).
    #[module(skip)]
    pub rotary_emb: RotaryEmbedding,
}

impl Qwen2Model {
    /// Loads from `w` prefixed with `model`.
    pub fn load(w: &Weights, config: &Qwen2Config) -> Result<Qwen2Model, ModelError> {
        let layers = (0..config.num_hidden_layers)
            .map(|i| Qwen2DecoderLayer::load(&w.pp("layers").pp(i.to_string()), config))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Qwen2Model {
            embed_tokens: w.embedding("embed_tokens", config.vocab_size, config.hidden_size)?,
            layers,
            norm: Qwen2RmsNorm::load(&w.pp("norm"), config.hidden_size, config.rms_norm_eps)?,
            rotary_emb: RotaryEmbedding::new(config.head_dim, config.rope_theta),
        })
    }
}

impl<P: Projection> Qwen2Model<P> {
    /// Replaces each decoder projection by `f(path, projection)`, with HF module paths under
    /// `prefix` (`prefix.layers.0.self_attn.q_proj`, …).
    pub fn map_projections<Q: Projection, E>(
        self,
        prefix: &str,
        f: &mut impl FnMut(&str, P) -> Result<Q, E>,
    ) -> Result<Qwen2Model<Q>, E> {
        let layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, layer)| layer.map_projections(&format!("{prefix}.layers.{i}"), f))
            .collect::<Result<Vec<_>, E>>()?;
        Ok(Qwen2Model {
            embed_tokens: self.embed_tokens,
            layers,
            norm: self.norm,
            rotary_emb: self.rotary_emb,
        })
    }

    /// Runs the decoder stack and the final norm (HF `last_hidden_state`).
    ///
    /// # Shapes
    ///
    /// - input_embeds: `[batch, seq, hidden]`
    /// - positions: `[batch, seq]` (RoPE position ids)
    /// - key_padding: `[batch, cached + seq]`, `true` = padding
    /// - output: `[batch, seq, hidden]`, in `input_embeds`' dtype
    pub fn forward(
        &self,
        input_embeds: Tensor<3>,
        positions: Tensor<2, Int>,
        key_padding: Option<Tensor<2, Bool>>,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>, ModelError> {
        let [b, s, h] = input_embeds.dims();
        let hidden = self.norm.weight.dims()[0];
        if h != hidden || s == 0 || b == 0 {
            return Err(ModelError::Input(format!(
                "input embeddings are [{b}, {s}, {h}], expected [batch > 0, seq > 0, {hidden}]"
            )));
        }
        // burn does not promote dtypes: mixed operands would panic inside the first matmul.
        let weight_dtype = self.embed_tokens.weight.val().dtype();
        if input_embeds.dtype() != weight_dtype {
            return Err(ModelError::Input(format!(
                "input embeddings are {:?}, the model's weights are {weight_dtype:?}: cast first",
                input_embeds.dtype()
            )));
        }
        if positions.dims() != [b, s] {
            return Err(ModelError::Input(format!(
                "position ids are {:?}, expected [{b}, {s}]",
                positions.dims()
            )));
        }
        let past = match cache.as_deref() {
            None => 0,
            Some(c) => {
                if c.num_layers() != self.layers.len() {
                    return Err(ModelError::Input(format!(
                        "KV cache is for {} layers, the model has {}",
                        c.num_layers(),
                        self.layers.len()
                    )));
                }
                if let Some(cached_b) = c.batch_size().filter(|&cb| cb != b) {
                    return Err(ModelError::Input(format!(
                        "KV cache holds batch {cached_b}, input has batch {b}"
                    )));
                }
                c.seq_len()
            }
        };
        let key_len = cache.as_deref().map_or(s, |c| c.key_len_after(s));
        let device = input_embeds.device();
        let mask = attention_mask(b, s, past, key_len, key_padding, &device)?;
        let (cos, sin) = self.rotary_emb.cos_sin(positions, input_embeds.dtype());
        let mut x = input_embeds;
        for (i, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| (c, i));
            x = layer.forward(x, cos.clone(), sin.clone(), mask.clone(), layer_cache)?;
        }
        Ok(self.norm.forward(x))
    }
}

/// Qwen2 with its output head (HF `Qwen2ForCausalLM`): the NVILA `llm/` checkpoint.
#[derive(Module, Debug)]
pub struct Qwen2ForCausalLM<P: Projection = Linear> {
    /// The decoder stack (checkpoint prefix `model`).
    pub model: Qwen2Model<P>,
    /// Output projection `[hidden, vocab]`, no bias; `None` when `tie_word_embeddings` makes
    /// it reuse `model.embed_tokens.weight` (HF ties the two and saves no `lm_head.weight`).
    pub lm_head: Option<Linear>,
    /// The configuration the model was loaded with.
    #[module(skip)]
    pub config: Qwen2Config,
}

impl Qwen2ForCausalLM {
    /// Builds the model from `w` (the checkpoint root: keys `model.*`, `lm_head.weight`).
    ///
    /// Tensors keep `w`'s dtype policy (the file's dtype unless `w` converts). Call
    /// [`Weights::finish`] afterwards to report unused keys, or use [`Self::from_pretrained`].
    pub fn load(w: &Weights, config: &Qwen2Config) -> Result<Qwen2ForCausalLM, ModelError> {
        let model = Qwen2Model::load(&w.pp("model"), config)?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(w.linear("lm_head", config.hidden_size, config.vocab_size, false)?)
        };
        Ok(Qwen2ForCausalLM {
            model,
            lm_head,
            config: config.clone(),
        })
    }

    /// Reads `dir/config.json`, loads the (possibly sharded) safetensors in `dir`, converting to
    /// `dtype` if given, and fails on any checkpoint tensor the model did not use (except a
    /// redundant `lm_head.weight` of a tied model, which HF also ignores).
    pub fn from_pretrained(
        dir: &Path,
        device: &Device,
        dtype: Option<DType>,
    ) -> Result<Qwen2ForCausalLM, ModelError> {
        let config = Qwen2Config::from_file(&dir.join("config.json"))?;
        let w = Weights::open(dir, device, dtype)?;
        let model = Self::load(&w, &config)?;
        let tied = config.tie_word_embeddings;
        w.finish(|key| tied && key == "lm_head.weight")?;
        Ok(model)
    }
}

impl<P: Projection> Qwen2ForCausalLM<P> {
    /// Every decoder projection with its HF module path inside the LLM, in layer order
    /// (`model.layers.0.self_attn.q_proj`, …, `model.layers.0.mlp.down_proj`, `model.layers.1…`):
    /// the paths [`Self::map_projections`] hands over.
    pub fn projections(&self) -> Vec<(String, &P)> {
        let mut out = Vec::with_capacity(self.model.layers.len() * 7);
        for (i, layer) in self.model.layers.iter().enumerate() {
            for (name, p) in layer.projections() {
                out.push((format!("model.layers.{i}.{name}"), p));
            }
        }
        out
    }

    /// Replaces each decoder projection by `f(path, projection)`; `path` is the HF module path
    /// inside the LLM (`model.layers.0.self_attn.q_proj`, `model.layers.27.mlp.down_proj`).
    /// `lm_head` is not a decoder projection and is kept (VILA never adapts it).
    pub fn map_projections<Q: Projection, E>(
        self,
        mut f: impl FnMut(&str, P) -> Result<Q, E>,
    ) -> Result<Qwen2ForCausalLM<Q>, E> {
        Ok(Qwen2ForCausalLM {
            model: self.model.map_projections("model", &mut f)?,
            lm_head: self.lm_head,
            config: self.config,
        })
    }

    /// An empty KV cache for this model whose storage grows in blocks of [`KV_BLOCK`] tokens,
    /// so decoding meets a new tensor shape once per block instead of once per token.
    pub fn new_cache(&self) -> KvCache {
        KvCache::with_block(self.model.layers.len(), KV_BLOCK)
    }

    /// Token embeddings; ids must be below `vocab_size`.
    ///
    /// # Shapes
    ///
    /// - ids: `[batch, seq]`
    /// - output: `[batch, seq, hidden]`, in the checkpoint dtype
    pub fn embed(&self, ids: Tensor<2, Int>) -> Result<Tensor<3>, ModelError> {
        let vocab = self.config.vocab_size as i64;
        if ids.dims().contains(&0) {
            return Err(ModelError::Input(format!(
                "token ids are {:?}: empty",
                ids.dims()
            )));
        }
        // One device-to-host read on the happy path; the range is only computed for the message.
        let out_of_range = ids
            .clone()
            .lower_elem(0)
            .bool_or(ids.clone().greater_equal_elem(vocab))
            .any();
        let unreadable = |e| ModelError::Input(format!("token ids could not be read: {e:?}"));
        if out_of_range.try_into_scalar::<bool>().map_err(unreadable)? {
            let min: i64 = ids.clone().min().try_into_scalar().map_err(unreadable)?;
            let max: i64 = ids.max().try_into_scalar().map_err(unreadable)?;
            return Err(ModelError::Input(format!(
                "token ids span {min}..={max}, outside the vocabulary 0..{vocab}"
            )));
        }
        Ok(self.model.embed_tokens.forward(ids))
    }

    /// Runs the LLM on embeddings whose positions continue the cache (`cached..cached + seq`,
    /// HF's default `position_ids`), appending to `cache` if given. Returns the final-norm hidden
    /// state (HF `last_hidden_state`); [`Self::logits`] maps it to the vocabulary.
    ///
    /// `key_padding` marks padded keys over the cached and new tokens, `true` = padding (HF
    /// `attention_mask == 0`); padded queries still produce (unused) outputs, as in HF.
    ///
    /// # Shapes
    ///
    /// - input_embeds: `[batch, seq, hidden]`
    /// - key_padding: `[batch, cached + seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(
        &self,
        input_embeds: Tensor<3>,
        key_padding: Option<Tensor<2, Bool>>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>, ModelError> {
        let [b, s, _] = input_embeds.dims();
        let past = cache.as_deref().map_or(0, KvCache::seq_len);
        let positions = sequential_positions(b, past, s, &input_embeds.device());
        self.model
            .forward(input_embeds, positions, key_padding, cache)
    }

    /// [`Self::forward`] with explicit RoPE position ids, e.g. `cumsum(attention_mask) - 1` for
    /// left-padded batches.
    ///
    /// # Shapes
    ///
    /// - input_embeds: `[batch, seq, hidden]`
    /// - positions: `[batch, seq]`
    /// - key_padding: `[batch, cached + seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward_with_positions(
        &self,
        input_embeds: Tensor<3>,
        positions: Tensor<2, Int>,
        key_padding: Option<Tensor<2, Bool>>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>, ModelError> {
        self.model
            .forward(input_embeds, positions, key_padding, cache)
    }

    /// Vocabulary logits of hidden states (`lm_head`, or the embedding matrix when tied).
    ///
    /// # Shapes
    ///
    /// - hidden: `[batch, seq, hidden]`
    /// - output: `[batch, seq, vocab]`, in the hidden state's dtype
    ///
    /// # Panics
    ///
    /// If the last axis of `hidden` is not `hidden_size` (burn's `Linear` asserts it); the
    /// output of [`Self::forward`] always fits.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => {
                let dtype = hidden.dtype();
                let weight = self.model.embed_tokens.weight.val().cast(dtype).transpose();
                linear(hidden, weight, None)
            }
        }
    }

    /// Text-only forward: embed, run without padding or cache, project to logits.
    ///
    /// # Shapes
    ///
    /// - ids: `[batch, seq]`
    /// - output: `[batch, seq, vocab]`
    pub fn forward_ids(&self, ids: Tensor<2, Int>) -> Result<Tensor<3>, ModelError> {
        let embeds = self.embed(ids)?;
        Ok(self.logits(self.forward(embeds, None, None)?))
    }
}
