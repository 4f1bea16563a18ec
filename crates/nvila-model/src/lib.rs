//! NVILA-Lite in burn: SigLIP vision tower + `mlp_downsample_*_fix` projector + Qwen2 LLM,
//! loading the real HF checkpoint layout, with VILA's processor (tiling, chat template, label
//! masking) and generation. Every numeric piece is checked against PyTorch `transformers` on tiny
//! random checkpoints (`tests/`, fixtures beside their generators).
//!
//! Module map:
//! - [`error`]: the crate's typed error.
//! - [`device`]: devices by name, and the CUDA kernel-cache policy.
//! - [`config`]: the checkpoint folder layout and the top-level `config.json`.
//! - [`weights`]: the only code that reads checkpoint files (memory-mapped safetensors, sharded
//!   or not) and hands out tensors by HF key, reporting missing, unused and wrong-shape keys.
//! - [`text`]: Qwen2 (`llm/`).
//! - [`vision`]: SigLIP (`vision_tower/`).
//! - [`projector`]: the multimodal projector (`mm_projector/`).
//! - [`processor`]: images and text → model input (tiling, chat template, label masking).
//! - [`nvila`]: [`NvilaModel`]: the three parts wired as VILA does (`_embed` splicing, training-
//!   path scoring and loss, inference-path prompt embeddings).
//! - [`generate`]: KV-cache decoding (greedy, temperature / top-p with a seed), streaming text.

pub mod config;
pub mod device;
pub mod error;
pub mod generate;
pub mod nvila;
pub mod processor;
pub mod projector;
pub mod text;
pub mod vila_parts;
pub mod vision;
pub mod weights;

pub use config::{CheckpointLayout, NvilaConfig};
pub use error::ModelError;
pub use nvila::{NvilaModel, ScoreOutput, Spliced};
pub use vila_parts::{VilaParts, beyond_cut_tower};
pub use weights::Weights;
