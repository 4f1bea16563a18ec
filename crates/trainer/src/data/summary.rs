//! The data half of `trainer --dry-run`: how many samples, how much padding, how many steps.
//!
//! Step counts follow HF's `Trainer`: `len(train_dataloader)` micro-batches per rank per
//! epoch, `num_update_steps_per_epoch = len(dataloader) // gradient_accumulation_steps`,
//! `max_steps = ceil(num_train_epochs × num_update_steps_per_epoch)` unless `--max_steps` is
//! given.

use std::collections::HashMap;
use std::fmt;

use nvila_model::processor::conversation::remove_media_tokens;
use nvila_model::processor::masking::preprocess_conversation;
use nvila_model::processor::{Processor, Turn};
use serde::Serialize;

use super::error::DataError;
use super::geometry::BatchGeometry;
use super::padding::PaddingReport;
use super::prepare::count_supervised;
use super::sampler::Sampler;
use super::set::TrainingSet;

/// What the data plan of a run looks like.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataSummary {
    /// The `DATA_MIXTURE` string.
    pub mixture: String,
    /// Sizes per mixture item and in total, before and after padding.
    pub padding: PaddingReport,
    /// The batch shape.
    pub geometry: BatchGeometry,
    /// Samples each rank trains per epoch.
    pub samples_per_rank: usize,
    /// Samples no rank trains (drop-last of the sampler; nonzero only with `@subset`).
    pub dropped_by_sampler: usize,
    /// Micro-batches per rank per epoch.
    pub micro_batches_per_epoch: u64,
    /// Optimizer steps per epoch.
    pub steps_per_epoch: u64,
    /// Optimizer steps of the run.
    pub total_steps: u64,
    /// Labels ≠ −100 over one epoch of the padded set, before truncation to
    /// `model_max_length`; None until [`DataSummary::count_supervised_tokens`] runs.
    pub supervised_tokens_per_epoch: Option<u64>,
}

impl DataSummary {
    /// The plan for `epochs` epochs (HF `num_train_epochs`), or `max_steps` when given.
    pub fn new(
        set: &TrainingSet,
        sampler: &Sampler,
        epochs: f64,
        max_steps: Option<u64>,
    ) -> DataSummary {
        let steps_per_epoch = sampler.steps_per_epoch();
        let total_steps = max_steps
            .unwrap_or_else(|| (epochs.max(0.0) * steps_per_epoch.max(1) as f64).ceil() as u64);
        DataSummary {
            mixture: set.mixture().to_string(),
            padding: set.padding().clone(),
            geometry: sampler.geometry(),
            samples_per_rank: sampler.num_samples(),
            dropped_by_sampler: sampler.dropped(),
            micro_batches_per_epoch: sampler.micro_batches_per_epoch(),
            steps_per_epoch,
            total_steps,
            supervised_tokens_per_epoch: None,
        }
    }

    /// Fills `supervised_tokens_per_epoch` by tokenizing and label-masking every distinct
    /// record once, without images (the image prefix only touches the user turn, so the
    /// trained labels are the same until truncation). Costs two tokenizations per record.
    pub fn count_supervised_tokens(
        &mut self,
        set: &TrainingSet,
        processor: &Processor,
    ) -> Result<(), DataError> {
        let mut per_record: HashMap<(usize, usize), u64> = HashMap::new();
        let mut total = 0u64;
        for index in 0..set.len() {
            let Some(sample) = set.sample(index) else {
                break;
            };
            let key = (sample.part, sample.record_index);
            let n = match per_record.get(&key) {
                Some(&n) => n,
                None => {
                    let turns: Vec<Turn> = sample
                        .record
                        .turns
                        .iter()
                        .map(|t| Turn::new(t.from, remove_media_tokens(&t.value)))
                        .collect();
                    let (_, _, labels) =
                        preprocess_conversation(processor.tokenizer(), &turns, &sample.system)
                            .map_err(|source| DataError::Sample {
                                dataset: sample.dataset.to_string(),
                                file: sample.file.to_path_buf(),
                                record: sample.record_index,
                                id: sample.record.id.clone(),
                                source: Box::new(source),
                            })?;
                    let n = count_supervised(&labels) as u64;
                    per_record.insert(key, n);
                    n
                }
            };
            total += n;
        }
        self.supervised_tokens_per_epoch = Some(total);
        Ok(())
    }
}

impl fmt::Display for DataSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data mixture {:?}:", self.mixture)?;
        for d in &self.padding.datasets {
            write!(
                f,
                "  {}: {} records -> {} padded",
                d.name, d.records, d.padded
            )?;
            if d.after_subset != d.padded {
                write!(f, " -> {} in subset", d.after_subset)?;
            }
            if d.repeat != 1 {
                write!(f, " x{}", d.repeat)?;
            }
            writeln!(f, " = {} samples", d.samples)?;
        }
        writeln!(f, "  {}", self.padding)?;
        let g = &self.geometry;
        writeln!(
            f,
            "  global batch {} = {} rank(s) x {} per device x {} accumulation",
            g.global_batch(),
            g.world_size,
            g.per_device_batch,
            g.grad_accum
        )?;
        if self.dropped_by_sampler > 0 {
            writeln!(
                f,
                "  {} samples dropped by the sampler (not a multiple of the global batch)",
                self.dropped_by_sampler
            )?;
        }
        writeln!(
            f,
            "  {} samples per rank per epoch, {} micro-batches, {} optimizer steps per epoch; {} steps in total",
            self.samples_per_rank,
            self.micro_batches_per_epoch,
            self.steps_per_epoch,
            self.total_steps
        )?;
        if let Some(t) = self.supervised_tokens_per_epoch {
            writeln!(
                f,
                "  {t} supervised tokens per epoch (before truncation to model_max_length)"
            )?;
        }
        Ok(())
    }
}
