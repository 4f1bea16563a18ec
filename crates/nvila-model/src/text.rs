//! Qwen2 (`Qwen2ForCausalLM`), the LLM of NVILA-Lite, computed as HF `transformers`
//! (`models/qwen2/modeling_qwen2.py`, v5.24) computes it, loaded from the checkpoint's `llm/`
//! folder.
//!
//! The model takes embeddings rather than ids ([`Qwen2ForCausalLM::forward`]) because image
//! features are spliced into the embedded prompt before the LLM runs
//! (`llava/model/llava_arch.py::_embed`); [`Qwen2ForCausalLM::forward_ids`] is the text-only
//! shortcut. A [`KvCache`] carries keys and values between decode steps.
//!
//! Files, one concept each: [`config`] (HF `config.json`), [`rms_norm`], [`rope`] (rotate-half
//! RoPE with f32 frequencies), [`attention`] (GQA, explicit masks, f32 scores), [`mlp`]
//! (SiLU-gated), [`decoder`] (one pre-norm layer), [`model`] (embeddings, layers, final norm,
//! `lm_head`), [`cache`] and [`projection`] (the linear-layer type parameter adapters plug into).

pub mod attention;
pub mod cache;
pub mod config;
pub mod decoder;
pub mod mlp;
pub mod model;
pub mod projection;
pub mod rms_norm;
pub mod rope;

pub use cache::KvCache;
pub use config::Qwen2Config;
pub use model::{KV_BLOCK, Qwen2ForCausalLM, Qwen2Model};
pub use projection::Projection;
