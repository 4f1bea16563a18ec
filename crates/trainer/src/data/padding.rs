//! Padding each dataset to a multiple of the global batch, as VILA does.
//!
//! `llava/data/dataset_impl/llava.py::LLaVADataset.__init__` (NVlabs/VILA), per dataset of
//! the mixture, right after loading its records:
//!
//! ```python
//! residual = global_batch_size - len(self.instances) % global_batch_size
//! if residual != global_batch_size:
//!     if global_batch_size // len(self.instances) >= 2:
//!         self.instances = self.instances * (global_batch_size // len(self.instances))
//!         residual = global_batch_size - len(self.instances) % global_batch_size
//!     selected_elements = random.sample(range(len(self.instances)), residual)
//!     self.instances.extend([self.instances[i] for i in selected_elements])
//! ```
//!
//! So samples are *repeated*, never dropped: a dataset smaller than half a batch is first
//! replicated whole, then randomly chosen records are appended. A quirk is kept: when the
//! replication alone reaches an exact multiple, `residual` becomes the whole batch and a
//! full extra batch of duplicates is appended (1 record, global batch 2 → 4 samples). The
//! draws come from Python's global `random`, seeded by `set_seed(seed)` in
//! `llava/train/train.py` and shared by the datasets in mixture order; we assume nothing
//! else draws from it between `set_seed` and `build_dataset` (nothing in VILA's code path
//! does).

use std::fmt;

use serde::Serialize;

use super::pyrandom::PyRandom;

/// Record indices of one dataset after VILA's padding, in order: `0..n` (possibly several
/// times) followed by the random duplicates. Empty for `n == 0`.
pub fn pad_to_global_batch(n: usize, global_batch: usize, rng: &mut PyRandom) -> Vec<usize> {
    let mut instances: Vec<usize> = (0..n).collect();
    if n == 0 || global_batch == 0 {
        return instances;
    }
    let mut residual = global_batch - n % global_batch;
    if residual != global_batch {
        if global_batch / n >= 2 {
            let times = global_batch / n;
            instances = (0..times).flat_map(|_| 0..n).collect();
            residual = global_batch - instances.len() % global_batch;
        }
        let selected = rng.sample(instances.len(), residual);
        let extra: Vec<usize> = selected.into_iter().map(|i| instances[i]).collect();
        instances.extend(extra);
    }
    instances
}

/// Sizes of one mixture item through VILA's dataset construction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetPadding {
    /// Registry name.
    pub name: String,
    /// Records in the file.
    pub records: usize,
    /// After padding to a multiple of the global batch.
    pub padded: usize,
    /// After `@subset` (equal to `padded` without a subset).
    pub after_subset: usize,
    /// `name*N` repeat count.
    pub repeat: usize,
    /// Samples this item contributes: `after_subset × repeat`.
    pub samples: usize,
}

/// What padding did to the whole mixture; its `Display` is the line the trainer logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaddingReport {
    /// `world_size × per_device_batch × grad_accum`.
    pub global_batch: usize,
    /// One entry per mixture item, in mixture order.
    pub datasets: Vec<DatasetPadding>,
    /// Σ records × repeat: the samples of one epoch without padding.
    pub before: usize,
    /// Σ samples: the samples of one epoch after padding (and subsets).
    pub after: usize,
}

impl fmt::Display for PaddingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dataset padded from {} to {} samples (a multiple of the global batch {} per dataset, as VILA's LLaVADataset does)",
            self.before, self.after, self.global_batch
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiples_are_untouched() {
        let mut rng = PyRandom::new(42);
        assert_eq!(pad_to_global_batch(4, 2, &mut rng), vec![0, 1, 2, 3]);
        assert_eq!(pad_to_global_batch(3, 1, &mut rng), vec![0, 1, 2]);
    }

    #[test]
    fn vila_quirk_full_extra_batch() {
        let mut rng = PyRandom::new(3);
        assert_eq!(pad_to_global_batch(1, 6, &mut rng).len(), 12);
    }
}
