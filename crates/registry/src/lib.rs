//! VILA's dataset registry, read and written from Rust, and the checks to run on a data
//! mixture before anything trains.
//!
//! * [`Registry`]: `llava/data/registry/datasets/*.yaml` files (`name: {_target_,
//!   data_path, media_dir, ...}`), loaded alone or merged like `VILA_DATASETS`, edited with
//!   [`Registry::upsert`] and saved atomically with unknown keys preserved.
//! * [`parse_mixture`] / [`Mixtures`]: `DATA_MIXTURE` strings and `mixtures.yaml`, with
//!   VILA's expansion and sort order.
//! * [`validate`]: reads every dataset of a mixture and reports bad records (missing or
//!   escaping media, conversations VILA would reject) all at once, or per-dataset counts.
//!
//! The conventions come from VILA (github.com/NVlabs/VILA): `llava/data/builder.py`,
//! `llava/data/dataset_impl/llava.py`, `llava/data/base.py`, `finetuning/README.md`; each
//! module cites the file it follows.

mod entry;
mod error;
mod media;
mod mixture;
mod records;
mod registry;
mod report;
mod scan;
mod validate;
mod vila_datasets;

pub use entry::{DatasetEntry, LLAVA_TARGET};
pub use error::{Problem, RegistryError};
pub use mixture::{MixtureItem, Mixtures, parse_mixture};
pub use registry::Registry;
pub use report::{Counts, DatasetReport, ValidateOptions, ValidationReport};
pub use validate::{validate, validate_with};
pub use vila_datasets::resolve_vila_datasets;
