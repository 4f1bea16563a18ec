//! LoRA fine-tuning of NVILA-Lite with HF / VILA semantics. The only crate (with `infer-cli`)
//! that wires `nvila-model`, `lora` and `registry` together.

pub mod adapter;
pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod data;
pub mod metrics;
pub mod optim;
pub mod plan;
pub mod plot;
pub mod run;
pub mod schedule;
pub mod state;
pub mod step;
pub mod tuned;
