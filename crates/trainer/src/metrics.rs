//! Training metrics: a JSONL file with one object per logged step, and a progress display.
//!
//! The JSONL file (`metrics.jsonl` in the run folder) is appended to as training goes, so a
//! killed run keeps what it logged. On resume from `checkpoint-N` the lines of steps after `N`
//! belong to a future that is being replayed; [`MetricsWriter::open`] drops them (and a torn
//! last line) so the file reads as one uninterrupted run. Non-finite numbers are written as
//! `null` (JSON has no NaN) and read back as NaN.
//!
//! [`Progress`] shows step, loss, lr, tokens/s and ETA: an `indicatif` bar on a terminal, plain
//! `tracing` log lines every `logging_steps` otherwise (files and CI logs do not want a bar).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint;

/// File name of the metrics inside the run folder.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Errors of the metrics file.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Rewriting the kept lines failed.
    #[error(transparent)]
    Rewrite(#[from] checkpoint::CheckpointError),
    /// A line does not parse (reading only; opening for append drops a torn tail instead).
    #[error("{}: line {line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One logged optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// Optimizer steps done (HF `global_step`).
    pub step: u64,
    /// Fractional epoch.
    #[serde(with = "nan_as_null")]
    pub epoch: f64,
    /// Mean loss since the previous record.
    #[serde(with = "nan_as_null")]
    pub loss: f64,
    /// Learning rate logged for this step.
    #[serde(with = "nan_as_null")]
    pub learning_rate: f64,
    /// Pre-clip global gradient norm.
    #[serde(with = "nan_as_null")]
    pub grad_norm: f64,
    /// Tokens processed so far in the run (all ranks).
    pub tokens: u64,
    /// Throughput since the previous record.
    #[serde(with = "nan_as_null")]
    pub tokens_per_s: f64,
    /// Wall time since the start of this process's training, in seconds.
    #[serde(with = "nan_as_null")]
    pub elapsed_s: f64,
}

mod nan_as_null {
    use super::*;

    pub fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            s.serialize_f64(*value)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// Appends [`MetricsRecord`]s to a JSONL file, one line each, flushed per line.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Opens `path` for a run that continues after optimizer step `resume_step` (0 for a fresh
    /// run): keeps the leading lines with `step <= resume_step`, drops everything from the first
    /// line that is later, torn or unparsable, and appends after that.
    pub fn open(path: &Path, resume_step: u64) -> Result<Self, MetricsError> {
        let io_err = |source| MetricsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let existing = match File::open(path) {
            Ok(file) => Some(file),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(io_err(error)),
        };
        if let Some(file) = existing {
            let mut kept = Vec::new();
            let mut dropped = 0usize;
            let mut keeping = true;
            for line in BufReader::new(file).split(b'\n') {
                let line = line.map_err(io_err)?;
                if line.is_empty() {
                    continue;
                }
                let record = serde_json::from_slice::<MetricsRecord>(&line).ok();
                match record {
                    Some(r) if keeping && r.step <= resume_step => {
                        kept.extend_from_slice(&line);
                        kept.push(b'\n');
                    }
                    _ => {
                        keeping = false;
                        dropped += 1;
                    }
                }
            }
            if dropped > 0 {
                tracing::info!(
                    path = %path.display(),
                    "dropping {dropped} metrics line(s) after step {resume_step} (resumed run)"
                );
                checkpoint::write_file_atomic(path, &kept)?;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record and flushes it.
    pub fn append(&mut self, record: &MetricsRecord) -> Result<(), MetricsError> {
        let mut line = serde_json::to_vec(record).map_err(|e| MetricsError::Io {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.flush())
            .map_err(|source| MetricsError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads every record of a metrics file; any bad line is an error naming it.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRecord>, MetricsError> {
    let file = File::open(path).map_err(|source| MetricsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut records = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| MetricsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        records.push(
            serde_json::from_str(&line).map_err(|e| MetricsError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            })?,
        );
    }
    Ok(records)
}

/// How [`Progress`] shows itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// An `indicatif` bar on stderr.
    Bar,
    /// `tracing` info lines every `log_every` steps.
    Log,
    /// Nothing (tests).
    Hidden,
}

impl ProgressMode {
    /// [`ProgressMode::Bar`] when stderr is a terminal, else [`ProgressMode::Log`].
    pub fn detect() -> Self {
        use std::io::IsTerminal;
        if io::stderr().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Log
        }
    }
}

/// `1h02m`, `3m05s`, `42s`.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Progress of a run from `start_step` to `total_steps`, with an ETA from this session's pace.
#[derive(Debug)]
pub struct Progress {
    mode: ProgressMode,
    bar: Option<indicatif::ProgressBar>,
    total_steps: u64,
    start_step: u64,
    log_every: u64,
    started: Instant,
}

impl Progress {
    /// A display for steps `start_step + 1 ..= total_steps`; in [`ProgressMode::Log`] a line is
    /// logged every `log_every` steps and at the last step.
    pub fn new(mode: ProgressMode, total_steps: u64, start_step: u64, log_every: u64) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = indicatif::ProgressBar::new(total_steps);
            let style = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(start_step);
            bar
        });
        Self {
            mode,
            bar,
            total_steps,
            start_step,
            log_every: log_every.max(1),
            started: Instant::now(),
        }
    }

    /// Estimated time left after `step`, from the pace of the steps done by this process.
    pub fn eta(&self, step: u64) -> Option<Duration> {
        let done = step.checked_sub(self.start_step).filter(|&d| d > 0)?;
        let left = self.total_steps.saturating_sub(step);
        Some(self.started.elapsed().mul_f64(left as f64 / done as f64))
    }

    /// The status text for a record: `step 12/100 | loss 1.2345 | lr 1.00e-4 | 1234 tok/s | ETA 5m12s`.
    pub fn message(&self, record: &MetricsRecord) -> String {
        let eta = self
            .eta(record.step)
            .map_or_else(|| "?".to_string(), format_duration);
        format!(
            "step {}/{} | loss {:.4} | lr {:.3e} | {:.0} tok/s | ETA {}",
            record.step,
            self.total_steps,
            record.loss,
            record.learning_rate,
            record.tokens_per_s,
            eta
        )
    }

    /// Shows `record` (called after each logged step).
    pub fn update(&self, record: &MetricsRecord) {
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(record.step);
                    bar.set_message(self.message(record));
                }
            }
            ProgressMode::Log => {
                if record.step.is_multiple_of(self.log_every) || record.step >= self.total_steps {
                    tracing::info!("{}", self.message(record));
                }
            }
            ProgressMode::Hidden => {}
        }
    }

    /// Ends the display (the bar stays visible with its last message).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Logs what the device's allocator holds (bytes of live tensors, bytes of pages reserved), on
/// devices that report it (burn's CUDA pools; not the CPU). `nvidia-smi` sees only the reserved
/// pages, which grow in 1 GiB steps (docs/gpu.md, 2026-11-30): the live bytes say what a smaller
/// card would need.
pub fn log_device_memory(device: &burn::tensor::Device, at: &str, level: tracing::Level) {
    let Some(usage) = device.memory_pool_usage() else {
        return;
    };
    let mib = |b: u64| b / (1 << 20);
    let (live, reserved) = (mib(usage.bytes_in_use), mib(usage.bytes_reserved));
    if level == tracing::Level::INFO {
        tracing::info!(
            live_mib = live,
            reserved_mib = reserved,
            "device memory {at}"
        );
    } else {
        tracing::debug!(
            live_mib = live,
            reserved_mib = reserved,
            "device memory {at}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: u64) -> MetricsRecord {
        MetricsRecord {
            step,
            epoch: step as f64 / 10.0,
            loss: 2.0 / step as f64,
            learning_rate: 1e-4,
            grad_norm: 0.5,
            tokens: step * 100,
            tokens_per_s: 1000.0,
            elapsed_s: step as f64,
        }
    }

    #[test]
    fn nan_round_trips_as_null() {
        let mut r = record(1);
        r.loss = f64::NAN;
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"loss\":null"), "{line}");
        let back: MetricsRecord = serde_json::from_str(&line).unwrap();
        assert!(back.loss.is_nan());
    }

    #[test]
    fn message_and_eta() {
        let p = Progress::new(ProgressMode::Hidden, 100, 0, 1);
        assert_eq!(p.eta(0), None);
        let text = p.message(&record(10));
        assert!(
            text.starts_with("step 10/100 | loss 0.2000 | lr 1.000e-4"),
            "{text}"
        );
        assert_eq!(format_duration(Duration::from_secs(3725)), "1h02m");
        assert_eq!(format_duration(Duration::from_secs(65)), "1m05s");
    }
}
