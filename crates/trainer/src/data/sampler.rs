//! The order samples are trained in: VILA's `VILADistributedSampler`, exactly, plus a cursor
//! for exact resume.
//!
//! `llava/train/llava_trainer.py::VILADistributedSampler` (NVlabs/VILA; what
//! `LLaVATrainer._get_train_sampler` always builds without `--longvila_sampler` and sequence
//! parallelism), with `sample_len_list` the mixture elements' sizes:
//!
//! 1. each element is trimmed to a multiple of `world × bs × gas` (`drop_last`, a no-op after
//!    VILA's padding except for `@subset` items): `per_replica[i] = len[i] // (world·bs·gas) ·
//!    bs·gas`;
//! 2. rank `r` takes the contiguous block `[r·per_replica[i], (r+1)·per_replica[i])` of each
//!    element: samples never move between ranks, and the ranks' shards are disjoint;
//! 3. `random.seed(seed + epoch)`, then `random.shuffle` of each block in element order
//!    (one Python `random` stream, reproduced by [`PyRandom`]);
//! 4. blocks are sorted by decreasing length (stable) and interleaved: block `b` of length
//!    `L` takes the free slots `k · free / L` (`k = 0..L`) of the rank's order.
//!
//! HF's dataloader then cuts the rank's order into micro-batches of `bs`, and `gas`
//! consecutive micro-batches make one optimizer step; step `s` of the run is, on every rank,
//! micro-batches `s·gas .. (s+1)·gas` of that rank's order, and the global batch of the step
//! is the union of the ranks' shares. HF resumes by skipping the micro-batches already
//! trained in the epoch (`skip_first_batches`), which [`DataCursor`] does.
//!
//! The order is Python's, not torch's `RandomSampler`/`DistributedSampler` stream (a torch
//! generator), which VILA's trainer does not use.

use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::geometry::BatchGeometry;
use super::pyrandom::PyRandom;

/// A position in the training stream: the next micro-batch to train. The same on every rank.
/// Saved in checkpoints; resuming from it continues with exactly the uninterrupted order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct DataCursor {
    /// Epoch (the sampler's `set_epoch` value, from 0).
    pub epoch: u64,
    /// Micro-batches of this epoch already consumed on each rank.
    pub micro_batch: u64,
}

/// The micro-batch at a cursor: sample indices of the set, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicroBatchPlan {
    /// Where this micro-batch is in the stream.
    pub cursor: DataCursor,
    /// Global sample indices (see [`super::TrainingSet::sample`]).
    pub indices: Vec<usize>,
}

/// VILA's distributed sampler for one rank.
#[derive(Debug, Clone)]
pub struct Sampler {
    lens: Vec<usize>,
    per_replica: Vec<usize>,
    offsets: Vec<usize>,
    geometry: BatchGeometry,
    rank: usize,
    seed: u64,
    num_samples: usize,
}

impl Sampler {
    /// A sampler over elements of sizes `sample_lens` for `rank` of `geometry.world_size`.
    /// Fails if the rank is outside the world or no element has a full global batch.
    pub fn new(
        sample_lens: &[usize],
        geometry: BatchGeometry,
        rank: usize,
        seed: u64,
    ) -> Result<Sampler, DataError> {
        if rank >= geometry.world_size {
            return Err(DataError::Geometry(format!(
                "rank {rank} is outside world_size {}",
                geometry.world_size
            )));
        }
        let global = geometry.global_batch();
        let per_rank_step = geometry.samples_per_rank_step();
        let per_replica: Vec<usize> = sample_lens
            .iter()
            .map(|&len| len / global * per_rank_step)
            .collect();
        let num_samples: usize = per_replica.iter().sum();
        if num_samples == 0 {
            return Err(DataError::Geometry(format!(
                "no dataset of the mixture (sizes {sample_lens:?}) holds one global batch of {global} samples"
            )));
        }
        let mut offsets = Vec::with_capacity(sample_lens.len());
        let mut start = 0usize;
        for &len in sample_lens {
            offsets.push(start);
            start += len;
        }
        Ok(Sampler {
            lens: sample_lens.to_vec(),
            per_replica,
            offsets,
            geometry,
            rank,
            seed,
            num_samples,
        })
    }

    /// This sampler's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The batch shape.
    pub fn geometry(&self) -> BatchGeometry {
        self.geometry
    }

    /// The seed (`data_seed` or `seed` in HF).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Samples this rank trains per epoch.
    pub fn num_samples(&self) -> usize {
        self.num_samples
    }

    /// Samples of the set that no rank trains (the drop-last trimming of step 1).
    pub fn dropped(&self) -> usize {
        let total: usize = self.lens.iter().sum();
        total - self.num_samples * self.geometry.world_size
    }

    /// Micro-batches per rank per epoch (HF's `len(train_dataloader)`).
    pub fn micro_batches_per_epoch(&self) -> u64 {
        (self.num_samples / self.geometry.per_device_batch) as u64
    }

    /// Optimizer steps per epoch (`len(train_dataloader) // gradient_accumulation_steps`).
    pub fn steps_per_epoch(&self) -> u64 {
        (self.num_samples / self.geometry.samples_per_rank_step()) as u64
    }

    /// The cursor after `global_step` optimizer steps (HF's `epochs_trained = step //
    /// steps_per_epoch`, then the micro-batches of the steps trained in that epoch).
    pub fn cursor_at_step(&self, global_step: u64) -> DataCursor {
        let per_epoch = self.steps_per_epoch();
        DataCursor {
            epoch: global_step / per_epoch,
            micro_batch: global_step % per_epoch * self.geometry.grad_accum as u64,
        }
    }

    /// The optimizer step a cursor sits in (its first micro-batch when at a step boundary).
    pub fn step_of(&self, cursor: DataCursor) -> u64 {
        cursor.epoch * self.steps_per_epoch() + cursor.micro_batch / self.geometry.grad_accum as u64
    }

    /// Checks that `cursor` lies inside an epoch of this sampler.
    pub fn check_cursor(&self, cursor: DataCursor) -> Result<(), DataError> {
        if cursor.micro_batch >= self.micro_batches_per_epoch() {
            return Err(DataError::Cursor(format!(
                "micro-batch {} of epoch {} is past the {} micro-batches of an epoch (was the run resumed with another dataset or batch shape?)",
                cursor.micro_batch,
                cursor.epoch,
                self.micro_batches_per_epoch()
            )));
        }
        Ok(())
    }

    /// This rank's sample order for `epoch` (`VILADistributedSampler.__iter__` after
    /// `set_epoch(epoch)`): `num_samples()` global indices.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut blocks: Vec<Vec<usize>> = self
            .per_replica
            .iter()
            .zip(&self.offsets)
            .map(|(&per, &offset)| {
                let start = offset + self.rank * per;
                (start..start + per).collect()
            })
            .collect();
        let mut rng = PyRandom::new(u128::from(self.seed) + u128::from(epoch));
        for block in &mut blocks {
            rng.shuffle(block);
        }
        // `sorted(indices_list, key=lambda x: -len(x))`: stable.
        blocks.sort_by_key(|b| std::cmp::Reverse(b.len()));

        let mut order = vec![usize::MAX; self.num_samples];
        let mut available: Vec<usize> = (0..self.num_samples).collect();
        for block in blocks.iter().filter(|b| !b.is_empty()) {
            let free = available.len();
            let mut taken = vec![false; free];
            for (k, &sample) in block.iter().enumerate() {
                // `idx * len(indices_available) // len(indice)`; distinct since len <= free.
                let slot = (k as u128 * free as u128 / block.len() as u128) as usize;
                taken[slot] = true;
                order[available[slot]] = sample;
            }
            let mut keep = taken.iter().map(|t| !t);
            available.retain(|_| keep.next().unwrap_or(false));
        }
        debug_assert!(order.iter().all(|&i| i != usize::MAX));
        order
    }

    /// The cursor of the micro-batch after the one at `cursor`.
    pub fn advance(&self, cursor: DataCursor) -> DataCursor {
        if cursor.micro_batch + 1 >= self.micro_batches_per_epoch() {
            DataCursor {
                epoch: cursor.epoch + 1,
                micro_batch: 0,
            }
        } else {
            DataCursor {
                epoch: cursor.epoch,
                micro_batch: cursor.micro_batch + 1,
            }
        }
    }

    /// The micro-batches from `start` on, across epochs, forever (the caller stops).
    pub fn plan(&self, start: DataCursor) -> Result<Plan, DataError> {
        self.check_cursor(start)?;
        Ok(Plan {
            sampler: self.clone(),
            cursor: start,
            order: None,
        })
    }
}

/// Iterator over [`MicroBatchPlan`]s; computes each epoch's order once.
#[derive(Debug, Clone)]
pub struct Plan {
    sampler: Sampler,
    cursor: DataCursor,
    order: Option<(u64, Vec<usize>)>,
}

impl Plan {
    /// The position of the next micro-batch.
    pub fn cursor(&self) -> DataCursor {
        self.cursor
    }

    /// The sampler this plan follows.
    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }
}

impl Iterator for Plan {
    type Item = MicroBatchPlan;

    fn next(&mut self) -> Option<MicroBatchPlan> {
        let cursor = self.cursor;
        if self.order.as_ref().map(|(e, _)| *e) != Some(cursor.epoch) {
            self.order = Some((cursor.epoch, self.sampler.epoch_order(cursor.epoch)));
        }
        let (_, order) = self.order.as_ref()?;
        let bs = self.sampler.geometry.per_device_batch;
        let start = cursor.micro_batch as usize * bs;
        let indices = order.get(start..start + bs)?.to_vec();
        self.cursor = self.sampler.advance(cursor);
        Some(MicroBatchPlan { cursor, indices })
    }
}
