//! The training data pipeline: `DATA_MIXTURE` → samples in VILA's order → prepared, collated
//! micro-batches, as VILA's `llava/data/builder.py`, `LLaVADataset`, `VILADistributedSampler`
//! and `DataCollator` produce them (nvila.md §2–§4).
//!
//! - [`set`]: [`TrainingSet`]: the registry and mixture resolved (sorted, `*N`, `@subset`,
//!   mixtures), validated, records loaded and each dataset padded to a multiple of the global
//!   batch ([`padding`]).
//! - [`sampler`]: [`Sampler`]: VILA's distributed sampler (rank shards, per-epoch shuffle
//!   with Python's `random`, [`pyrandom`]) and [`DataCursor`] for exact resume.
//! - [`prepare`]: [`SamplePreparer`]: images read and tiled, chat template, tokens, labels,
//!   both truncations, through nvila-model's processor.
//! - [`loader`]: [`Loader`]: worker threads preparing micro-batches ahead, in order, bounded.
//! - [`collate`]: right padding, attention mask, the per-step supervised-token count.
//! - [`summary`]: the numbers `--dry-run` prints.
//!
//! Typical use (one rank):
//!
//! ```no_run
//! # fn main() -> Result<(), trainer::data::DataError> {
//! use std::path::Path;
//! use std::sync::Arc;
//! use trainer::data::*;
//!
//! let geometry = BatchGeometry::new(1, 1, 2)?;
//! let set = Arc::new(TrainingSet::open(
//!     Path::new("registry/default.yaml"),
//!     "WTS",
//!     &OpenOptions::new(geometry, 42),
//! )?);
//! let preparer = Arc::new(SamplePreparer::from_checkpoint(
//!     Path::new("NVILA-Lite-8B"),
//!     &PrepareOptions { model_max_length: Some(4096), image_aspect_ratio: None },
//! )?);
//! let sampler = Sampler::new(&set.sample_lens(), geometry, 0, 42)?;
//! let options = LoaderOptions::new(4, geometry, sampler.steps_per_epoch());
//! let mut loader = Loader::new(set, preparer, &sampler, sampler.cursor_at_step(0), options)?;
//! while let Some(step) = loader.next_step() {
//!     let step = step?;
//!     // forward/backward each micro-batch, loss = Σ CE / step.num_supervised_tokens
//!     // (summed over ranks); checkpoint `step.next_cursor`.
//! }
//! # Ok(()) }
//! ```

pub mod collate;
pub mod error;
pub mod geometry;
pub mod loader;
pub mod padding;
pub mod prepare;
pub mod pyrandom;
pub mod records;
pub mod sampler;
pub mod set;
pub mod summary;

pub use collate::{Collated, MicroBatch, StepBatch, collate};
pub use error::DataError;
pub use geometry::BatchGeometry;
pub use loader::{Loader, LoaderOptions, LoaderStats};
pub use padding::{DatasetPadding, PaddingReport, pad_to_global_batch};
pub use prepare::{PrepareOptions, PreparedSample, SamplePreparer};
pub use pyrandom::PyRandom;
pub use records::Record;
pub use sampler::{DataCursor, MicroBatchPlan, Plan, Sampler};
pub use set::{DatasetFile, OpenOptions, SampleRef, SystemChoice, TrainingSet};
pub use summary::DataSummary;
