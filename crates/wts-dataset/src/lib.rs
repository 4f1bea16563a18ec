//! WTS / BDD_PC_5K → VILA-format dataset.
//!
//! Reads the raw AI City Challenge Track 2 trees (caption, bbox and VQA JSON, the main-view CSV,
//! real H.264 videos) and writes what VILA's `LLaVADataset` loads: `<out>/<NAME>_dataset/
//! dataset.json` plus `images/N.jpg`, a manifest and a skip report.
//!
//! Module map:
//! - [`error`]: the crate's typed error; every variant names the file it is about.
//! - [`geometry`]: pixel boxes (`[x_min, y_min, width, height]`, as the bbox JSON stores them).
//! - [`annotations`]: serde models and parsers for caption / bbox / VQA JSON and the main-view CSV.
//! - [`layout`]: discovers scenarios, views, videos and annotation files in WTS and BDD trees.
//! - [`video`]: probing and decoding frames by time (the `ffmpeg` program), or from frame folders.
//! - [`draw`]: visual prompts: boxes drawn on frames, crops around the subjects.
//! - [`synth`]: writes a small synthetic WTS + BDD tree with real MP4 files (fixtures, demo, tests).
//! - [`convert`]: the conversion itself: samples, prompts, images, `dataset.json`, manifest, report.

pub mod annotations;
pub mod convert;
pub mod draw;
pub mod error;
pub mod geometry;
pub mod layout;
pub mod synth;
pub mod video;

pub use error::DatasetError;
