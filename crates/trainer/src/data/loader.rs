//! The prefetching data loader: worker threads prepare samples (decode, tile, tokenize, mask)
//! ahead of the training loop, in the sampler's order, with little host memory.
//!
//! - **Order.** Every sample gets a sequence number when it is dispatched; results are put
//!   back in that order before they are handed out, so the batches are the same with 0, 1
//!   or 16 workers and whatever the thread timing.
//! - **Bound.** At most `prefetch_micro_batches` micro-batches are dispatched and not yet
//!   handed out (PyTorch's `prefetch_factor`, counted in micro-batches), so at most
//!   `prefetch_micro_batches × per_device_batch` prepared samples wait in memory besides the
//!   ones the caller holds. (VILA's HF dataloader keeps `2 × dataloader_num_workers` batches in
//!   flight — 32 with its 16 workers — which is part of why host RAM ran out.)
//! - **Errors.** A worker's error (or panic) is handed out in the place of its micro-batch,
//!   naming the record; the loader then ends. VILA instead logs and trains on a random other
//!   sample (`resample_on_failure`); a crash that names the record is easier to fix.
//! - **Shutdown.** Dropping the loader stops the workers: they finish the sample at hand,
//!   see the stop flag or the closed job channel, and are joined.
//! - `num_workers == 0` prepares each sample on the caller's thread when it is needed, as
//!   PyTorch does with `num_workers=0`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam::channel::{self, Receiver, Sender};

use super::collate::{MicroBatch, StepBatch};
use super::error::DataError;
use super::geometry::BatchGeometry;
use super::prepare::{PreparedSample, SamplePreparer};
use super::sampler::{DataCursor, Plan, Sampler};
use super::set::TrainingSet;

/// Loader settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Worker threads (`dataloader_num_workers`); 0 prepares on the caller's thread.
    pub num_workers: usize,
    /// Micro-batches dispatched ahead of the consumer (at least 1).
    pub prefetch_micro_batches: usize,
    /// The run stops after this many optimizer steps (HF `max_steps`); the loader hands out
    /// nothing at or past it.
    pub total_steps: u64,
}

impl LoaderOptions {
    /// `num_workers` workers and one optimizer step's micro-batches (at least 2) prefetched,
    /// so the next step is prepared while the current one runs on the device.
    pub fn new(num_workers: usize, geometry: BatchGeometry, total_steps: u64) -> Self {
        Self {
            num_workers,
            prefetch_micro_batches: geometry.grad_accum.max(2),
            total_steps,
        }
    }
}

/// Counters for monitoring and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoaderStats {
    /// Samples prepared by workers (or the caller's thread) so far.
    pub prepared: usize,
    /// Samples handed out in micro-batches so far.
    pub handed_out: usize,
}

type Outcome = (u64, Result<PreparedSample, DataError>);

struct Job {
    seq: u64,
    index: usize,
}

/// A dispatched micro-batch whose samples are being prepared.
struct Pending {
    cursor: DataCursor,
    first_seq: u64,
    indices: Vec<usize>,
}

/// Prepared micro-batches of one rank, in the sampler's order, from a cursor on.
pub struct Loader {
    set: Arc<TrainingSet>,
    preparer: Arc<SamplePreparer>,
    plan: Plan,
    options: LoaderOptions,
    /// Cursor of the next micro-batch to hand out.
    cursor: DataCursor,
    pending: VecDeque<Pending>,
    next_seq: u64,
    ready: BTreeMap<u64, Result<PreparedSample, DataError>>,
    jobs: Option<Sender<Job>>,
    results: Receiver<Outcome>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    prepared: Arc<AtomicUsize>,
    handed_out: usize,
    done: bool,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("cursor", &self.cursor)
            .field("options", &self.options)
            .field("pending", &self.pending.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Loader {
    /// Starts the workers and dispatches the first micro-batches from `start` (a cursor from
    /// [`Sampler::cursor_at_step`] or a checkpoint).
    pub fn new(
        set: Arc<TrainingSet>,
        preparer: Arc<SamplePreparer>,
        sampler: &Sampler,
        start: DataCursor,
        options: LoaderOptions,
    ) -> Result<Loader, DataError> {
        let plan = sampler.plan(start)?;
        let options = LoaderOptions {
            prefetch_micro_batches: options.prefetch_micro_batches.max(1),
            ..options
        };
        let (job_tx, job_rx) = channel::unbounded::<Job>();
        let (result_tx, result_rx) = channel::unbounded::<Outcome>();
        let stop = Arc::new(AtomicBool::new(false));
        let prepared = Arc::new(AtomicUsize::new(0));
        let mut loader = Loader {
            set,
            preparer,
            plan,
            options,
            cursor: start,
            pending: VecDeque::new(),
            next_seq: 0,
            ready: BTreeMap::new(),
            // Owned by the loader before any worker starts, so that dropping it (also on a
            // failed spawn below) closes the channel the workers wait on.
            jobs: (options.num_workers > 0).then_some(job_tx),
            results: result_rx,
            workers: Vec::with_capacity(options.num_workers),
            stop,
            prepared,
            handed_out: 0,
            done: false,
        };
        for i in 0..options.num_workers {
            let worker = Worker {
                set: Arc::clone(&loader.set),
                preparer: Arc::clone(&loader.preparer),
                jobs: job_rx.clone(),
                results: result_tx.clone(),
                stop: Arc::clone(&loader.stop),
                prepared: Arc::clone(&loader.prepared),
            };
            let handle = std::thread::Builder::new()
                .name(format!("data-loader-{i}"))
                .spawn(move || worker.run())
                .map_err(DataError::Spawn)?;
            loader.workers.push(handle);
        }
        drop(result_tx);
        loader.top_up();
        Ok(loader)
    }

    /// The cursor of the next micro-batch to be handed out.
    pub fn cursor(&self) -> DataCursor {
        self.cursor
    }

    /// Most prepared samples waiting beyond those handed out.
    pub fn capacity(&self) -> usize {
        self.options.prefetch_micro_batches * self.plan.sampler().geometry().per_device_batch
    }

    /// Progress counters.
    pub fn stats(&self) -> LoaderStats {
        LoaderStats {
            prepared: self.prepared.load(Ordering::SeqCst),
            handed_out: self.handed_out,
        }
    }

    /// The next micro-batch, None at the end of the run (or after an error was returned).
    pub fn next_micro_batch(&mut self) -> Option<Result<MicroBatch, DataError>> {
        if self.done {
            return None;
        }
        self.top_up();
        let Some(pending) = self.pending.pop_front() else {
            self.done = true;
            return None;
        };
        let mut samples = Vec::with_capacity(pending.indices.len());
        for (k, &index) in pending.indices.iter().enumerate() {
            match self.take(pending.first_seq + k as u64, index) {
                Ok(sample) => samples.push(sample),
                Err(e) => {
                    self.done = true;
                    self.shutdown();
                    return Some(Err(e));
                }
            }
        }
        self.handed_out += samples.len();
        self.cursor = self.plan.sampler().advance(pending.cursor);
        self.top_up();
        Some(Ok(MicroBatch {
            cursor: pending.cursor,
            samples,
        }))
    }

    /// The `grad_accum` micro-batches of the next optimizer step, with this rank's count of
    /// supervised tokens. The cursor must be at a step boundary (it is, unless
    /// [`Self::next_micro_batch`] was called in between).
    pub fn next_step(&mut self) -> Option<Result<StepBatch, DataError>> {
        let sampler = self.plan.sampler();
        let gas = sampler.geometry().grad_accum;
        let start = self.cursor;
        if !start.micro_batch.is_multiple_of(gas as u64) {
            return Some(Err(DataError::Cursor(format!(
                "micro-batch {} of epoch {} is not the first of an optimizer step of {gas}",
                start.micro_batch, start.epoch
            ))));
        }
        let step = sampler.step_of(start);
        let mut micro_batches = Vec::with_capacity(gas);
        for _ in 0..gas {
            match self.next_micro_batch() {
                Some(Ok(mb)) => micro_batches.push(mb),
                Some(Err(e)) => return Some(Err(e)),
                None if micro_batches.is_empty() => return None,
                None => {
                    return Some(Err(DataError::Cursor(format!(
                        "the data stream ended in the middle of step {step}"
                    ))));
                }
            }
        }
        let num_supervised_tokens = micro_batches
            .iter()
            .map(MicroBatch::num_supervised_tokens)
            .sum();
        Some(Ok(StepBatch {
            step,
            cursor: start,
            next_cursor: self.cursor,
            micro_batches,
            num_supervised_tokens,
        }))
    }

    /// Dispatches micro-batches until `prefetch_micro_batches` are pending or the run's
    /// last step is reached.
    fn top_up(&mut self) {
        while self.pending.len() < self.options.prefetch_micro_batches {
            let cursor = self.plan.cursor();
            if self.plan.sampler().step_of(cursor) >= self.options.total_steps {
                return;
            }
            let Some(mb) = self.plan.next() else { return };
            let first_seq = self.next_seq;
            self.next_seq += mb.indices.len() as u64;
            if let Some(jobs) = &self.jobs {
                for (k, &index) in mb.indices.iter().enumerate() {
                    // A send fails only when every worker is gone; `take` reports that.
                    let _ = jobs.send(Job {
                        seq: first_seq + k as u64,
                        index,
                    });
                }
            }
            self.pending.push_back(Pending {
                cursor: mb.cursor,
                first_seq,
                indices: mb.indices,
            });
        }
    }

    /// The result of sample `seq`, waiting for the workers if needed.
    fn take(&mut self, seq: u64, index: usize) -> Result<PreparedSample, DataError> {
        if self.workers.is_empty() {
            self.prepared.fetch_add(1, Ordering::SeqCst);
            return prepare_index(&self.set, &self.preparer, index);
        }
        loop {
            if let Some(result) = self.ready.remove(&seq) {
                return result;
            }
            match self.results.recv() {
                Ok((s, result)) => {
                    self.ready.insert(s, result);
                }
                Err(_) => return Err(DataError::WorkersGone),
            }
        }
    }

    /// Stops and joins the workers.
    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.jobs = None;
        for handle in self.workers.drain(..) {
            if handle.join().is_err() {
                tracing::error!("a data loader worker panicked outside sample preparation");
            }
        }
        self.ready.clear();
    }
}

impl Iterator for Loader {
    type Item = Result<MicroBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_micro_batch()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn prepare_index(
    set: &TrainingSet,
    preparer: &SamplePreparer,
    index: usize,
) -> Result<PreparedSample, DataError> {
    match set.sample(index) {
        Some(sample) => preparer.prepare_catching(&sample),
        None => Err(DataError::Cursor(format!(
            "sample index {index} is past the {} samples of the set",
            set.len()
        ))),
    }
}

/// One worker thread's state.
struct Worker {
    set: Arc<TrainingSet>,
    preparer: Arc<SamplePreparer>,
    jobs: Receiver<Job>,
    results: Sender<Outcome>,
    stop: Arc<AtomicBool>,
    prepared: Arc<AtomicUsize>,
}

impl Worker {
    fn run(self) {
        while let Ok(job) = self.jobs.recv() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let result = prepare_index(&self.set, &self.preparer, job.index);
            self.prepared.fetch_add(1, Ordering::SeqCst);
            if self.results.send((job.seq, result)).is_err() {
                break;
            }
        }
    }
}
