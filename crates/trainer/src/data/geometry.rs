//! How many samples one optimizer step takes, and where each rank's share comes from.
//!
//! VILA's global batch is `per_device_train_batch_size × world_size × gradient_accumulation_steps`
//! (`llava/data/builder.py::build_dataset` passes it to every dataset, which pads to a
//! multiple of it). Every rank runs `grad_accum` micro-batches of `per_device_batch` samples
//! per optimizer step.

use serde::{Deserialize, Serialize};

use super::error::DataError;

/// The batch shape of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchGeometry {
    /// Data-parallel ranks (GPUs).
    pub world_size: usize,
    /// Samples per micro-batch on one rank (`per_device_train_batch_size`).
    pub per_device_batch: usize,
    /// Micro-batches per optimizer step on one rank (`gradient_accumulation_steps`).
    pub grad_accum: usize,
}

impl BatchGeometry {
    /// Checks that every number is at least 1 and their product fits a `usize`.
    pub fn new(
        world_size: usize,
        per_device_batch: usize,
        grad_accum: usize,
    ) -> Result<Self, DataError> {
        for (what, v) in [
            ("world_size", world_size),
            ("per_device_batch", per_device_batch),
            ("grad_accum", grad_accum),
        ] {
            if v == 0 {
                return Err(DataError::Geometry(format!("{what} must be at least 1")));
            }
        }
        world_size
            .checked_mul(per_device_batch)
            .and_then(|x| x.checked_mul(grad_accum))
            .ok_or_else(|| DataError::Geometry("the global batch size overflows".to_string()))?;
        Ok(Self {
            world_size,
            per_device_batch,
            grad_accum,
        })
    }

    /// One rank, one sample per micro-batch, no accumulation.
    pub fn single() -> Self {
        Self {
            world_size: 1,
            per_device_batch: 1,
            grad_accum: 1,
        }
    }

    /// Samples per optimizer step over all ranks.
    pub fn global_batch(&self) -> usize {
        self.world_size * self.per_device_batch * self.grad_accum
    }

    /// Samples one rank consumes per optimizer step.
    pub fn samples_per_rank_step(&self) -> usize {
        self.per_device_batch * self.grad_accum
    }
}
