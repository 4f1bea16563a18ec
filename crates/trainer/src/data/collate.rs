//! Right-padded micro-batches, as VILA's `llava/data/collate.py::DataCollator` builds them,
//! and the supervised-token count of an optimizer step.
//!
//! The collator pads `input_ids` with the tokenizer's `pad_token_id` and labels with −100
//! (`pad_sequence`, right padding), truncates both to `model_max_length` (already done per
//! sample: truncating before or after padding gives the same rows), and sets
//! `attention_mask = input_ids != pad_token_id`; here the mask comes from the lengths, which
//! is the same unless a real token equals the pad id (it never does: `[PAD]` is not in any
//! text). Images of all samples are concatenated in order, one tile per `<image>` id.
//!
//! Loss normalisation (nvila.md §3.4): VILA divides the summed cross-entropy by
//! `num_items_in_batch`, the count of labels ≠ −100 over all micro-batches of the step,
//! summed over ranks (HF `get_batch_samples` + the gather in
//! `llava/train/transformer_normalize_monkey_patch.py::compute_loss`), so the loss is a token
//! mean over the whole global batch. [`StepBatch::num_supervised_tokens`] is this rank's part
//! of that count; with several ranks the trainer sums it across them.

use nvila_model::processor::{IGNORE_INDEX, PixelValues};

use super::error::DataError;
use super::prepare::PreparedSample;
use super::sampler::DataCursor;

/// The samples of one micro-batch on this rank, in the sampler's order.
#[derive(Debug, Clone, PartialEq)]
pub struct MicroBatch {
    /// Where this micro-batch is in the stream.
    pub cursor: DataCursor,
    /// `per_device_batch` prepared samples.
    pub samples: Vec<PreparedSample>,
}

impl MicroBatch {
    /// Labels ≠ −100 over the micro-batch (VILA's count, see [`PreparedSample`]).
    pub fn num_supervised_tokens(&self) -> usize {
        self.samples.iter().map(|s| s.num_supervised_tokens).sum()
    }

    /// Right-pads the micro-batch (see [`collate`]).
    pub fn collate(&self, pad_token_id: u32) -> Result<Collated, DataError> {
        collate(&self.samples, pad_token_id)
    }
}

/// One optimizer step's micro-batches on this rank.
#[derive(Debug, Clone, PartialEq)]
pub struct StepBatch {
    /// Optimizer step index over the whole run, from 0.
    pub step: u64,
    /// The cursor of the first micro-batch.
    pub cursor: DataCursor,
    /// The cursor after the last micro-batch: save it with a checkpoint written after this
    /// step, and resume from it.
    pub next_cursor: DataCursor,
    /// `grad_accum` micro-batches.
    pub micro_batches: Vec<MicroBatch>,
    /// Σ labels ≠ −100 over the micro-batches: this rank's share of the loss denominator.
    pub num_supervised_tokens: usize,
}

/// A right-padded micro-batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Collated {
    /// Rows.
    pub batch: usize,
    /// Columns: the longest sample.
    pub seq_len: usize,
    /// `[batch, seq_len]` row-major, padded with the pad id.
    pub input_ids: Vec<u32>,
    /// `[batch, seq_len]`, padded with −100.
    pub labels: Vec<i64>,
    /// `[batch, seq_len]`: true at real tokens, false at padding.
    pub attention_mask: Vec<bool>,
    /// Unpadded length of each row.
    pub lengths: Vec<usize>,
    /// All tiles of the batch, row by row, `[n_tiles, 3, s, s]`.
    pub pixel_values: PixelValues,
    /// Tiles of each row.
    pub tiles_per_row: Vec<usize>,
    /// Labels ≠ −100 over the batch.
    pub num_supervised_tokens: usize,
}

/// VILA's `DataCollator` on prepared samples. Fails if the samples' tiles differ in size.
pub fn collate(samples: &[PreparedSample], pad_token_id: u32) -> Result<Collated, DataError> {
    let batch = samples.len();
    let seq_len = samples.iter().map(|s| s.input_ids.len()).max().unwrap_or(0);
    let mut input_ids = vec![pad_token_id; batch * seq_len];
    let mut labels = vec![IGNORE_INDEX; batch * seq_len];
    let mut attention_mask = vec![false; batch * seq_len];
    let mut lengths = Vec::with_capacity(batch);
    let mut tiles_per_row = Vec::with_capacity(batch);
    let image_size = samples
        .iter()
        .find(|s| s.pixel_values.n_tiles > 0)
        .map_or(0, |s| s.pixel_values.image_size);
    let mut data = Vec::new();
    let mut n_tiles = 0;
    for (row, s) in samples.iter().enumerate() {
        let n = s.input_ids.len();
        let at = row * seq_len;
        input_ids[at..at + n].copy_from_slice(&s.input_ids);
        labels[at..at + n].copy_from_slice(&s.labels);
        attention_mask[at..at + n].fill(true);
        lengths.push(n);
        if s.pixel_values.n_tiles > 0 {
            if s.pixel_values.image_size != image_size {
                return Err(DataError::Collate(format!(
                    "sample {} (dataset \"{}\", record {}) has {}-px tiles, others {image_size}-px",
                    s.index, s.dataset, s.record, s.pixel_values.image_size
                )));
            }
            data.extend_from_slice(&s.pixel_values.data);
            n_tiles += s.pixel_values.n_tiles;
        }
        tiles_per_row.push(s.pixel_values.n_tiles);
    }
    Ok(Collated {
        batch,
        seq_len,
        input_ids,
        labels,
        attention_mask,
        lengths,
        pixel_values: PixelValues {
            data,
            n_tiles,
            image_size,
        },
        tiles_per_row,
        num_supervised_tokens: samples.iter().map(|s| s.num_supervised_tokens).sum(),
    })
}
