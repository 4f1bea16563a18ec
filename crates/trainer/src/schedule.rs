//! The learning-rate schedule and step counts, as HF's `Trainer` computes them.
//!
//! - [`CosineSchedule`] is `transformers.get_cosine_schedule_with_warmup` (`optimization.py`,
//!   `_get_cosine_schedule_with_warmup_lr_lambda`) driven by `torch.optim.lr_scheduler.LambdaLR`
//!   (`lr = base_lr * lr_lambda(last_epoch)`, computed in Python floats = f64 here). The
//!   scheduler is stepped once at construction and once after every optimizer step, so optimizer
//!   step `k` (0-based) uses `lr_lambda(k)`: with warmup, **the first step uses lr = 0**.
//! - [`warmup_steps`] is `TrainingArguments.get_warmup_steps` for a ratio:
//!   `ceil(max_steps × warmup_ratio)`, with the same f64 arithmetic (`100 × 0.57` is
//!   `56.99999999999999`, so 57).
//! - [`max_steps`] is the `max_steps` of `Trainer._inner_training_loop` /
//!   `set_initial_training_values`.
//!
//! Two of these differ between the transformers VILA pins (4.46) and the one installed here
//! (5.24); [`HfVersion`] picks one. They agree whenever the number of micro-batches per epoch is
//! a multiple of the gradient accumulation steps, which VILA's sampler guarantees by padding the
//! dataset to a multiple of the global batch.

use std::f64::consts::PI;

/// Which `transformers.Trainer` a number mirrors, where they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfVersion {
    /// transformers 4.46 (VILA's pin): `update steps per epoch = max(len // GAS, 1)`; the
    /// `learning_rate` logged for step `k` is read after `lr_scheduler.step()`, i.e. the lr of
    /// step `k + 1` (`_maybe_log_save_evaluate` calls `_get_learning_rate()`).
    V4_46,
    /// transformers 5.x (5.24 installed): a trailing partial accumulation counts as an update
    /// step (`len // GAS + (len % GAS > 0)`), and the logged `learning_rate` is read before
    /// `lr_scheduler.step()` ("get leaning rate before update"), i.e. the lr step `k` used.
    V5,
}

/// HF's cosine schedule with linear warmup, for one parameter group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineSchedule {
    /// The peak learning rate (`TrainingArguments.learning_rate`, the group's initial lr).
    pub base_lr: f64,
    /// Linear warmup length in optimizer steps.
    pub warmup_steps: u64,
    /// `num_training_steps` (= `max_steps`).
    pub total_steps: u64,
    /// Number of cosine cycles; HF's default 0.5 is a half cosine from the peak to 0.
    pub num_cycles: f64,
}

impl CosineSchedule {
    /// A half-cosine schedule (`num_cycles = 0.5`, HF's default) after `warmup_steps` of warmup.
    pub fn new(base_lr: f64, warmup_steps: u64, total_steps: u64) -> Self {
        Self {
            base_lr,
            warmup_steps,
            total_steps,
            num_cycles: 0.5,
        }
    }

    /// The schedule HF builds from `learning_rate`, `warmup_ratio` and `max_steps`.
    pub fn from_warmup_ratio(base_lr: f64, warmup_ratio: f64, total_steps: u64) -> Self {
        Self::new(
            base_lr,
            warmup_steps(warmup_ratio, total_steps),
            total_steps,
        )
    }

    /// `_get_cosine_schedule_with_warmup_lr_lambda(step)`: the lr multiplier at scheduler step
    /// `step`. Past `total_steps` the cosine continues (and climbs again), exactly as HF's.
    pub fn lr_lambda(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps.max(1) as f64;
        }
        // Python ints: `num_training_steps - num_warmup_steps` may be negative (warmup longer
        // than the run); `max(1, ...)` then makes it 1.
        let span = (self.total_steps as i128 - self.warmup_steps as i128).max(1) as f64;
        let progress = (step - self.warmup_steps) as f64 / span;
        (0.5 * (1.0 + (PI * self.num_cycles * 2.0 * progress).cos())).max(0.0)
    }

    /// The learning rate optimizer step `step` (0-based) uses: `base_lr * lr_lambda(step)`.
    pub fn lr_at(&self, step: u64) -> f64 {
        self.base_lr * self.lr_lambda(step)
    }

    /// The `learning_rate` HF writes to `log_history` for the log after optimizer step `step`
    /// (0-based; the entry's `"step"` is `step + 1`).
    pub fn logged_lr(&self, step: u64, version: HfVersion) -> f64 {
        match version {
            HfVersion::V5 => self.lr_at(step),
            HfVersion::V4_46 => self.lr_at(step + 1),
        }
    }
}

/// Warmup steps for a ratio: `ceil(max_steps × warmup_ratio)` in f64, as HF's
/// `get_warmup_steps` (transformers 4.46 `warmup_ratio`; transformers 5 folds the ratio into a
/// float `warmup_steps` < 1 with the same formula).
pub fn warmup_steps(warmup_ratio: f64, max_steps: u64) -> u64 {
    let steps = (max_steps as f64 * warmup_ratio).ceil();
    if steps.is_finite() && steps > 0.0 {
        steps as u64
    } else {
        0
    }
}

/// Optimizer steps per epoch for `len_dataloader` micro-batches (per rank) and `gas`
/// gradient-accumulation steps, at least 1.
pub fn num_update_steps_per_epoch(len_dataloader: u64, gas: u64, version: HfVersion) -> u64 {
    let gas = gas.max(1);
    let steps = match version {
        HfVersion::V4_46 => len_dataloader / gas,
        HfVersion::V5 => len_dataloader / gas + u64::from(!len_dataloader.is_multiple_of(gas)),
    };
    steps.max(1)
}

/// Total optimizer steps: `max_steps_override` when given (HF `max_steps > 0`), else
/// `ceil(num_train_epochs × update steps per epoch)`, computed in f64 as Python does.
pub fn max_steps(
    len_dataloader: u64,
    gas: u64,
    num_train_epochs: f64,
    max_steps_override: Option<u64>,
    version: HfVersion,
) -> u64 {
    if let Some(steps) = max_steps_override.filter(|&s| s > 0) {
        return steps;
    }
    let per_epoch = num_update_steps_per_epoch(len_dataloader, gas, version);
    let steps = (num_train_epochs * per_epoch as f64).ceil();
    if steps.is_finite() && steps > 0.0 {
        steps as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_starts_at_zero_and_reaches_peak() {
        let s = CosineSchedule::new(1e-4, 3, 10);
        assert_eq!(s.lr_at(0), 0.0);
        assert_eq!(s.lr_at(3), 1e-4);
        assert!(s.lr_at(9) > 0.0 && s.lr_at(9) < 1e-5);
        assert_eq!(s.lr_at(10), 0.0);
    }

    #[test]
    fn no_warmup_starts_at_peak() {
        let s = CosineSchedule::new(2e-5, 0, 4);
        assert_eq!(s.lr_at(0), 2e-5);
    }

    #[test]
    fn logged_lr_depends_on_the_hf_version() {
        let s = CosineSchedule::new(1.0, 2, 6);
        assert_eq!(s.logged_lr(0, HfVersion::V5), 0.0);
        assert_eq!(s.logged_lr(0, HfVersion::V4_46), 0.5);
    }

    #[test]
    fn warmup_uses_f64_ceil() {
        assert_eq!(warmup_steps(0.03, 100), 3);
        assert_eq!(warmup_steps(0.57, 100), 57);
        assert_eq!(warmup_steps(0.0, 100), 0);
        assert_eq!(warmup_steps(0.03, 0), 0);
    }
}
