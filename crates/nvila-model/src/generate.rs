//! Autoregressive generation: KV-cache prefill of the prompt embeddings, then one token per step,
//! greedy or sampled (temperature + nucleus/top-p), with streaming text output.
//!
//! This is what `LlavaMetaForCausalLM.generate_content` does after building the prompt
//! embeddings (`self.llm.generate(inputs_embeds=…)`, nvila.md §7): the prompt is run once through
//! the LLM with an empty [`KvCache`](crate::text::KvCache), then each new token is embedded and
//! run alone against the cache. Generation ends at the first stop id (VILA's stop ids are
//! `<|im_end|>` and eos, [`Tokenizer::stop_token_ids`]) or after
//! [`GenerateOptions::max_new_tokens`] tokens. The stop id itself is not returned (VILA decodes
//! with `skip_special_tokens=True`, which drops it).
//!
//! - Greedy (`temperature == 0`): argmax of the last position's logits in f32, first index on
//!   ties (as `torch.argmax`). Checked token for token against HF `generate(do_sample=False)`.
//! - Sampling: logits / temperature, softmax, then HF's `TopPLogitsWarper` (keep the smallest
//!   set of most probable tokens whose cumulative probability reaches `top_p`, at least one),
//!   then a draw from the renormalised distribution with a seeded [`Pcg32`]: the same seed gives
//!   the same tokens (on the same device and dtype). HF's default `top_k = 50` is **not** applied.
//!
//! [`NvilaModel::generate`] chooses only among the tokenizer's ids ([`NvilaModel::vocab_len`],
//! as VILA resizes the embeddings to `len(tokenizer)`), via [`generate_from_embeds_in_vocab`].
//! Unlike VILA, whose default limit is `max_length = model_max_length` counting the prompt, the
//! default budget here is 512 new tokens.
//!
//! [`TextStreamer`] turns tokens into text pieces as they arrive: byte-level BPE tokens can end
//! in the middle of a UTF-8 character, so a piece is only emitted once it decodes cleanly.

use burn::tensor::{DType, Int, Tensor, TensorData};
use image::RgbImage;

use crate::error::ModelError;
use crate::nvila::NvilaModel;
use crate::processor::Tokenizer;
use crate::text::{Projection, Qwen2ForCausalLM};

/// How to generate. [`Default`]: greedy, at most 512 new tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Most tokens to generate (a stop id ends generation earlier and is not counted).
    pub max_new_tokens: usize,
    /// Softmax temperature; `0` means greedy (argmax). Must be finite and `>= 0`.
    pub temperature: f32,
    /// Nucleus sampling threshold in `[0, 1]` (`1` keeps every token); ignored when greedy.
    pub top_p: f32,
    /// Seed of the sampling RNG; ignored when greedy.
    pub seed: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 512,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

impl GenerateOptions {
    /// Whether these options decode greedily.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Checks the ranges documented on the fields.
    pub fn validate(&self) -> Result<(), ModelError> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(ModelError::Input(format!(
                "temperature {} must be finite and >= 0 (0 = greedy)",
                self.temperature
            )));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return Err(ModelError::Input(format!(
                "top_p {} must be in [0, 1]",
                self.top_p
            )));
        }
        Ok(())
    }
}

/// A generated answer with its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// `decode(token_ids, skip_special_tokens=true).trim()`, as VILA returns it.
    pub text: String,
    /// Generated ids, without the stop id.
    pub token_ids: Vec<u32>,
    /// Length of the prompt the LLM saw (text tokens plus image feature tokens).
    pub prompt_tokens: usize,
}

/// PCG-XSH-RR 32 (O'Neill's `pcg32`): 64-bit state, 32-bit output. Small, fast and fully
/// determined by its seed, which is all sampling needs.
#[derive(Debug, Clone)]
pub struct Pcg32 {
    state: u64,
    inc: u64,
}

impl Pcg32 {
    const MULT: u64 = 6_364_136_223_846_793_005;

    /// A generator seeded with `seed` (the stream is fixed, so only `seed` matters).
    pub fn new(seed: u64) -> Self {
        // pcg32_srandom_r(seed, 54): state 0, step, add seed, step.
        let mut rng = Self {
            state: 0,
            inc: (54u64 << 1) | 1,
        };
        rng.next_u32();
        rng.state = rng.state.wrapping_add(seed);
        rng.next_u32();
        rng
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old.wrapping_mul(Self::MULT).wrapping_add(self.inc);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        let rot = (old >> 59) as u32;
        xorshifted.rotate_right(rot)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        let hi = u64::from(self.next_u32()) >> 5; // 27 bits
        let lo = u64::from(self.next_u32()) >> 6; // 26 bits
        ((hi << 26) | lo) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Index of the largest value, the first one on ties (`torch.argmax`); `None` if `logits` is
/// empty or holds a NaN.
pub fn argmax(logits: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if v.is_nan() {
            return None;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Draws one token from `logits` with temperature `temperature > 0` and nucleus `top_p`
/// (HF `TemperatureLogitsWarper` then `TopPLogitsWarper` with `min_tokens_to_keep = 1`).
/// Returns `None` if the logits hold a NaN or no finite value.
///
/// The kept set is the smallest prefix of the tokens sorted by decreasing probability (ties by
/// increasing id) whose cumulative probability is `>= top_p`; the draw walks that prefix in the
/// same order, so a `top_p` small enough to keep one token, or a temperature small enough to
/// put all mass on one token, gives the argmax.
pub fn sample(logits: &[f32], temperature: f32, top_p: f32, rng: &mut Pcg32) -> Option<usize> {
    let top = argmax(logits)?;
    let max = f64::from(logits[top]);
    if !max.is_finite() {
        return None;
    }
    let t = f64::from(temperature);
    // Subtracting the max first keeps exp() in range for any temperature.
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &v)| (i, ((f64::from(v) - max) / t).exp()))
        .filter(|&(_, p)| p > 0.0)
        .collect();
    let total: f64 = probs.iter().map(|&(_, p)| p).sum();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let threshold = f64::from(top_p) * total;
    let mut kept = 0;
    let mut cum = 0.0;
    for &(_, p) in &probs {
        kept += 1;
        cum += p;
        if cum >= threshold {
            break;
        }
    }
    let kept = &probs[..kept.max(1)];
    let mass: f64 = kept.iter().map(|&(_, p)| p).sum();
    let target = rng.next_f64() * mass;
    let mut acc = 0.0;
    for &(i, p) in kept {
        acc += p;
        if target < acc {
            return Some(i);
        }
    }
    kept.last().map(|&(i, _)| i)
}

/// Next-token logits of the last position of `hidden` (`[1, seq, hidden]`), the first
/// `vocab_len` of them, as f32 on the host.
fn last_logits<P: Projection>(
    llm: &Qwen2ForCausalLM<P>,
    hidden: Tensor<3>,
    vocab_len: usize,
) -> Result<Vec<f32>, ModelError> {
    let [_, s, _] = hidden.dims();
    let mut logits = llm.logits(hidden.narrow(1, s - 1, 1));
    if logits.dims()[2] > vocab_len {
        logits = logits.narrow(2, 0, vocab_len);
    }
    logits
        .cast(DType::F32)
        .try_into_vec_as::<f32>()
        .map_err(|e| ModelError::Input(format!("logits could not be read back: {e}")))
}

/// Generates from prompt embeddings (`[1, seq, hidden]`, in the LLM's dtype) and returns the new
/// token ids, without the stop id.
///
/// The prompt is prefilled into a fresh KV cache, then one token is chosen per step (greedy or
/// sampled, see [`GenerateOptions`]) among all `vocab_size` logits. Generation ends when a token
/// in `stop_ids` is chosen (it is not returned and not passed to `on_token`), after
/// `opts.max_new_tokens` tokens, or when `on_token` returns `false` for a token (that token is
/// kept). No forward pass is run for the last token.
///
/// Errors: a batch other than 1, bad options, the LLM's own input checks, and logits that are
/// NaN (e.g. an overflow in reduced precision).
pub fn generate_from_embeds<P: Projection>(
    llm: &Qwen2ForCausalLM<P>,
    prompt_embeds: Tensor<3>,
    stop_ids: &[u32],
    opts: &GenerateOptions,
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<Vec<u32>, ModelError> {
    let vocab = llm.config.vocab_size;
    generate_from_embeds_in_vocab(llm, prompt_embeds, vocab, stop_ids, opts, on_token)
}

/// [`generate_from_embeds`] choosing only among the first `vocab_len` ids (clamped to
/// `vocab_size`): VILA resizes the LLM's embeddings to `len(tokenizer)` when it loads a model,
/// so the padding rows beyond the tokenizer (e.g. 152064 − 151665 in Qwen2-7B) are never
/// generated and take no probability mass ([`NvilaModel::vocab_len`]).
pub fn generate_from_embeds_in_vocab<P: Projection>(
    llm: &Qwen2ForCausalLM<P>,
    prompt_embeds: Tensor<3>,
    vocab_len: usize,
    stop_ids: &[u32],
    opts: &GenerateOptions,
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<Vec<u32>, ModelError> {
    opts.validate()?;
    let [b, s, _] = prompt_embeds.dims();
    if b != 1 {
        return Err(ModelError::Input(format!(
            "generation takes one sequence, the prompt embeddings have batch {b}"
        )));
    }
    if s == 0 {
        return Err(ModelError::Input("the prompt is empty".to_owned()));
    }
    if vocab_len == 0 {
        return Err(ModelError::Input(
            "generation needs a vocabulary of at least one token".to_owned(),
        ));
    }
    let mut tokens = Vec::new();
    if opts.max_new_tokens == 0 {
        return Ok(tokens);
    }
    let device = prompt_embeds.device();
    let mut rng = Pcg32::new(opts.seed);
    let mut cache = llm.new_cache();
    let mut hidden = llm.forward(prompt_embeds, None, Some(&mut cache))?;
    loop {
        let logits = last_logits(llm, hidden, vocab_len)?;
        let step = tokens.len();
        let chosen = if opts.is_greedy() {
            argmax(&logits)
        } else {
            sample(&logits, opts.temperature, opts.top_p, &mut rng)
        };
        let next = chosen.ok_or_else(|| {
            ModelError::Input(format!(
                "the logits of generation step {step} are NaN or all -inf (numeric overflow?)"
            ))
        })?;
        let next = u32::try_from(next)
            .map_err(|_| ModelError::Input(format!("token index {next} does not fit in a u32")))?;
        if stop_ids.contains(&next) {
            break;
        }
        tokens.push(next);
        if !on_token(next) || tokens.len() >= opts.max_new_tokens {
            break;
        }
        let ids =
            Tensor::<2, Int>::from_data(TensorData::new(vec![i64::from(next)], [1, 1]), &device);
        let embeds = llm.embed(ids)?;
        hidden = llm.forward(embeds, None, Some(&mut cache))?;
    }
    Ok(tokens)
}

/// Incremental detokenizer: push generated ids, get the new text as soon as it is complete.
///
/// Every push decodes all ids so far (`skip_special_tokens = true`) and emits what extends the
/// text already emitted, holding back:
/// - a trailing U+FFFD (the decoder's replacement for an incomplete UTF-8 sequence, which the
///   next byte-level token may complete),
/// - leading whitespace and, until more text follows, trailing whitespace,
///
/// so that the pieces concatenate exactly to [`TextStreamer::finish`]'s text,
/// `decode(ids, skip_special_tokens=true).trim()` (what VILA returns), provided decoding is
/// prefix-stable, as it is for byte-level BPE. A genuinely generated U+FFFD is emitted once
/// another character follows it, or by `finish`.
#[derive(Debug)]
pub struct TextStreamer<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    emitted: String,
}

impl<'a> TextStreamer<'a> {
    /// A streamer decoding with `tokenizer`.
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        Self {
            tokenizer,
            ids: Vec::new(),
            emitted: String::new(),
        }
    }

    /// The ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The text emitted so far.
    pub fn emitted(&self) -> &str {
        &self.emitted
    }

    /// Adds `id` and returns the newly completed text, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>, ModelError> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids, true)?;
        let stable = text.trim_end_matches('\u{FFFD}').trim();
        Ok(self.advance(stable))
    }

    /// Emits `target` beyond what was emitted, if it extends it.
    fn advance(&mut self, target: &str) -> Option<String> {
        let rest = target.strip_prefix(self.emitted.as_str())?;
        if rest.is_empty() {
            return None;
        }
        let piece = rest.to_owned();
        self.emitted.push_str(&piece);
        Some(piece)
    }

    /// The final text, `decode(ids, skip_special_tokens=true).trim()`, and the piece not yet
    /// emitted (`None` if nothing is left or the final text does not extend what was emitted).
    pub fn finish(mut self) -> Result<(String, Option<String>), ModelError> {
        let text = self.tokenizer.decode(&self.ids, true)?;
        let text = text.trim().to_owned();
        let piece = self.advance(&text);
        Ok((text, piece))
    }
}

impl<P: Projection> NvilaModel<P> {
    /// Answers `prompt` about `images` like VILA's `generate_content` (nvila.md §7): the prompt
    /// is built by [`NvilaModel::prepare_generation`] (one image is tiled, several are each
    /// resized to one tile; default system prompt; generation prompt), tokens are chosen among the
    /// tokenizer's [`NvilaModel::vocab_len`] ids, generation stops at the tokenizer's stop ids
    /// (`<|im_end|>`, eos), and the answer is
    /// `decode(skip_special_tokens=True).strip()`.
    ///
    /// `on_text` receives the answer in pieces as they are generated; the pieces concatenate to
    /// the returned text (see [`TextStreamer`]).
    pub fn generate(
        &self,
        prompt: &str,
        images: &[RgbImage],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<String, ModelError> {
        Ok(self.generate_detailed(prompt, images, opts, on_text)?.text)
    }

    /// [`NvilaModel::generate`], also returning the generated ids and the prompt length.
    pub fn generate_detailed(
        &self,
        prompt: &str,
        images: &[RgbImage],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, ModelError> {
        opts.validate()?;
        let embeds = self.prepare_generation(prompt, images)?;
        let prompt_tokens = embeds.dims()[1];
        let tokenizer = self.processor.tokenizer();
        let stop_ids = tokenizer.stop_token_ids();
        let mut streamer = TextStreamer::new(tokenizer);
        let mut decode_error = None;
        let token_ids = generate_from_embeds_in_vocab(
            &self.llm,
            embeds,
            self.vocab_len(),
            &stop_ids,
            opts,
            &mut |id| match streamer.push(id) {
                Ok(Some(piece)) => {
                    on_text(&piece);
                    true
                }
                Ok(None) => true,
                Err(e) => {
                    decode_error = Some(e);
                    false
                }
            },
        )?;
        if let Some(e) = decode_error {
            return Err(e);
        }
        let (text, piece) = streamer.finish()?;
        if let Some(piece) = piece {
            on_text(&piece);
        }
        Ok(Generation {
            text,
            token_ids,
            prompt_tokens,
        })
    }
}
