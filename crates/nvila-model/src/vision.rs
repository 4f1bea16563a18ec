//! SigLIP (`SiglipVisionModel`), NVILA's vision tower, as VILA uses it: loaded from the
//! checkpoint's `vision_tower/` folder and cut at `mm_vision_select_layer`.
//!
//! VILA's `VisionTower.forward` runs the HF model with `output_hidden_states=True` and keeps
//! `hidden_states[mm_vision_select_layer]` with every token (`cls_patch`: SigLIP has no class
//! token) (`llava/model/multimodal_encoder/vision_encoder.py::feature_select`). `hidden_states`
//! is (embeddings, layer 1 output, ..., layer L output), so NVILA's `-2` is the output of layer
//! L-1: [`SiglipVisionTower`] builds and runs only the layers in front of the selected state and
//! never `post_layernorm`, whose weights stay unused in the checkpoint.
//!
//! The math is transformers' `models/siglip/modeling_siglip.py` (identical in 4.46, VILA's pin,
//! and 5.24, which made the golden fixture). Files, one concept each: [`config`] (HF
//! `config.json`), [`embeddings`] (Conv2d patches + learned positions), [`attention`]
//! (multi-head, q/k/v/out with biases), [`mlp`] (tanh-GELU), [`encoder_layer`] (one pre-LN
//! layer) and [`tower`] (the truncated stack, loading and the unused-key contract).

pub mod attention;
pub mod config;
pub mod embeddings;
pub mod encoder_layer;
pub mod mlp;
pub mod tower;

pub use config::SiglipVisionConfig;
pub use tower::SiglipVisionTower;
