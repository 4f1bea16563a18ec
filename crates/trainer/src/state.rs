//! HF's `trainer_state.json`: the `TrainerState` dataclass of transformers 5.24
//! (`transformers/trainer_callback.py`), read and written exactly as `save_to_json` /
//! `load_from_json` do (`json.dumps(dataclasses.asdict(state), indent=2, sort_keys=True) + "\n"`).
//!
//! `log_history` holds one entry per logged optimizer step, as `Trainer._maybe_log_save_evaluate`
//! and `Trainer.log` write it: `{"epoch", "grad_norm", "learning_rate", "loss", "step"}` (see
//! [`crate::schedule::CosineSchedule::logged_lr`] for which lr is logged). Other entries (the
//! final `train_runtime` summary, evaluation) keep their keys in [`LogEntry::extra`].

mod pyjson;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use pyjson::{PyValue, python_float_repr};

use crate::checkpoint::{self, CheckpointError, CheckpointFile};

/// File name inside a checkpoint (HF `TRAINER_STATE_NAME`).
pub const TRAINER_STATE_NAME: &str = "trainer_state.json";

/// Problems reading a `trainer_state.json`.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be read or written.
    #[error(transparent)]
    Io(#[from] CheckpointError),
    /// The text is not JSON.
    #[error("{}: invalid JSON: {message}", path.display())]
    Json { path: PathBuf, message: String },
    /// A field has the wrong type.
    #[error("{}: field {field}: {message}", path.display())]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// One `log_history` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// `state.global_step` when logged.
    pub step: u64,
    /// `state.epoch` (fractional).
    pub epoch: Option<f64>,
    /// Mean training loss since the previous log.
    pub loss: Option<f64>,
    /// Learning rate (see [`crate::schedule::CosineSchedule::logged_lr`]).
    pub learning_rate: Option<f64>,
    /// Pre-clip global gradient norm.
    pub grad_norm: Option<f64>,
    /// Any other keys (e.g. `num_input_tokens_seen`, `train_runtime`).
    pub extra: BTreeMap<String, PyValue>,
}

impl LogEntry {
    /// The entry HF writes after a training step.
    pub fn train_step(
        step: u64,
        epoch: f64,
        loss: f64,
        learning_rate: f64,
        grad_norm: Option<f64>,
    ) -> Self {
        Self {
            step,
            epoch: Some(epoch),
            loss: Some(loss),
            learning_rate: Some(learning_rate),
            grad_norm,
            extra: BTreeMap::new(),
        }
    }

    fn to_py(&self) -> PyValue {
        let mut map = self.extra.clone();
        map.insert("step".into(), PyValue::Int(self.step as i64));
        for (key, value) in [
            ("epoch", self.epoch),
            ("loss", self.loss),
            ("learning_rate", self.learning_rate),
            ("grad_norm", self.grad_norm),
        ] {
            if let Some(v) = value {
                map.insert(key.into(), PyValue::Float(v));
            }
        }
        PyValue::Dict(map)
    }
}

/// `TrainerState` (all fields of transformers 5.24's dataclass).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerState {
    /// Fractional epoch: `epoch + (micro_step + 1) / steps_in_epoch` ([`epoch_progress`]).
    pub epoch: f64,
    /// Optimizer steps done.
    pub global_step: u64,
    /// Total optimizer steps of the run.
    pub max_steps: u64,
    /// Logging interval.
    pub logging_steps: u64,
    /// Evaluation interval (HF default 500; no evaluation here).
    pub eval_steps: u64,
    /// Checkpoint interval.
    pub save_steps: u64,
    /// Per-device batch size.
    pub train_batch_size: Option<u64>,
    /// `ceil(num_train_epochs)` (or the epochs `max_steps` implies).
    pub num_train_epochs: u64,
    /// Input tokens seen (HF counts only with `include_num_input_tokens_seen`).
    pub num_input_tokens_seen: u64,
    /// Floating-point operations so far (HF stores a float).
    pub total_flos: f64,
    /// The logs.
    pub log_history: Vec<LogEntry>,
    /// Best metric (evaluation only).
    pub best_metric: Option<f64>,
    /// Step of the best metric.
    pub best_global_step: Option<u64>,
    /// Folder of the best checkpoint.
    pub best_model_checkpoint: Option<String>,
    /// Rank-local main process.
    pub is_local_process_zero: bool,
    /// Global main process.
    pub is_world_process_zero: bool,
    /// Hyper-parameter search in progress.
    pub is_hyper_param_search: bool,
    /// Trial name (hyper-parameter search).
    pub trial_name: Option<String>,
    /// Trial parameters (hyper-parameter search).
    pub trial_params: Option<PyValue>,
    /// Saved callback states (`{"TrainerControl": {"args": {...}, "attributes": {}}}`).
    pub stateful_callbacks: BTreeMap<String, PyValue>,
    /// Keys this version does not know, kept so they survive a load → save.
    pub extra: BTreeMap<String, PyValue>,
}

/// The fractional epoch HF records: `epoch + (step + 1) / steps_in_epoch`
/// (`Trainer._inner_training_loop`), i.e. `epochs_done + batches_done / batches_per_epoch` with
/// micro-batches counted per rank.
pub fn epoch_progress(epochs_done: u64, batches_done_in_epoch: u64, batches_per_epoch: u64) -> f64 {
    epochs_done as f64 + batches_done_in_epoch as f64 / batches_per_epoch.max(1) as f64
}

/// `TrainerControl.state()` as saved in `stateful_callbacks` at checkpoint time.
fn trainer_control(should_training_stop: bool) -> PyValue {
    let args = [
        ("should_epoch_stop", false),
        ("should_evaluate", false),
        ("should_log", false),
        ("should_save", true),
        ("should_training_stop", should_training_stop),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), PyValue::Bool(v)))
    .collect();
    PyValue::Dict(BTreeMap::from([
        ("args".to_string(), PyValue::Dict(args)),
        ("attributes".to_string(), PyValue::Dict(BTreeMap::new())),
    ]))
}

fn opt<T>(value: Option<T>, f: impl FnOnce(T) -> PyValue) -> PyValue {
    value.map_or(PyValue::Null, f)
}

impl TrainerState {
    /// The state at the start of a run, as `Trainer._init_training_state` sets it up.
    pub fn new(
        max_steps: u64,
        logging_steps: u64,
        save_steps: u64,
        num_train_epochs: u64,
        train_batch_size: u64,
    ) -> Self {
        Self {
            epoch: 0.0,
            global_step: 0,
            max_steps,
            logging_steps,
            eval_steps: 500,
            save_steps,
            train_batch_size: Some(train_batch_size),
            num_train_epochs,
            num_input_tokens_seen: 0,
            total_flos: 0.0,
            log_history: Vec::new(),
            best_metric: None,
            best_global_step: None,
            best_model_checkpoint: None,
            is_local_process_zero: true,
            is_world_process_zero: true,
            is_hyper_param_search: false,
            trial_name: None,
            trial_params: None,
            stateful_callbacks: BTreeMap::from([(
                "TrainerControl".to_string(),
                trainer_control(false),
            )]),
            extra: BTreeMap::new(),
        }
    }

    /// Records the `TrainerControl` flags as HF saves them with a checkpoint (`should_save` true;
    /// `should_training_stop` true for the checkpoint of the last step).
    pub fn set_control_for_save(&mut self, should_training_stop: bool) {
        self.stateful_callbacks.insert(
            "TrainerControl".into(),
            trainer_control(should_training_stop),
        );
    }

    /// The state as a Python JSON value.
    pub fn to_py(&self) -> PyValue {
        let mut map = self.extra.clone();
        let int = |v: u64| PyValue::Int(v as i64);
        let fields = [
            ("best_global_step", opt(self.best_global_step, int)),
            ("best_metric", opt(self.best_metric, PyValue::Float)),
            (
                "best_model_checkpoint",
                opt(self.best_model_checkpoint.clone(), PyValue::Str),
            ),
            ("epoch", PyValue::Float(self.epoch)),
            ("eval_steps", int(self.eval_steps)),
            ("global_step", int(self.global_step)),
            (
                "is_hyper_param_search",
                PyValue::Bool(self.is_hyper_param_search),
            ),
            (
                "is_local_process_zero",
                PyValue::Bool(self.is_local_process_zero),
            ),
            (
                "is_world_process_zero",
                PyValue::Bool(self.is_world_process_zero),
            ),
            (
                "log_history",
                PyValue::List(self.log_history.iter().map(LogEntry::to_py).collect()),
            ),
            ("logging_steps", int(self.logging_steps)),
            ("max_steps", int(self.max_steps)),
            ("num_input_tokens_seen", int(self.num_input_tokens_seen)),
            ("num_train_epochs", int(self.num_train_epochs)),
            ("save_steps", int(self.save_steps)),
            (
                "stateful_callbacks",
                PyValue::Dict(self.stateful_callbacks.clone()),
            ),
            ("total_flos", PyValue::Float(self.total_flos)),
            ("train_batch_size", opt(self.train_batch_size, int)),
            ("trial_name", opt(self.trial_name.clone(), PyValue::Str)),
            (
                "trial_params",
                self.trial_params.clone().unwrap_or(PyValue::Null),
            ),
        ];
        for (key, value) in fields {
            map.insert(key.to_string(), value);
        }
        PyValue::Dict(map)
    }

    /// The file content, byte for byte as HF's `save_to_json` writes it.
    pub fn to_json(&self) -> String {
        let mut text = self.to_py().to_python_json();
        text.push('\n');
        text
    }

    /// The state as a checkpoint file named [`TRAINER_STATE_NAME`].
    pub fn checkpoint_file(&self) -> CheckpointFile {
        CheckpointFile::bytes(TRAINER_STATE_NAME, self.to_json().into_bytes())
    }

    /// Writes `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        Ok(checkpoint::write_file_atomic(
            path,
            self.to_json().as_bytes(),
        )?)
    }

    /// Reads a `trainer_state.json` (HF's or ours).
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let text = std::fs::read_to_string(path).map_err(|source| CheckpointError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses the JSON text of a `trainer_state.json`; `path` names it in errors. Missing
    /// fields take the dataclass defaults.
    pub fn parse(text: &str, path: &Path) -> Result<Self, StateError> {
        let value = PyValue::parse(text).map_err(|message| StateError::Json {
            path: path.to_path_buf(),
            message,
        })?;
        let PyValue::Dict(mut map) = value else {
            return Err(StateError::Json {
                path: path.to_path_buf(),
                message: "the top level is not an object".into(),
            });
        };
        let field_error = |field: &str, message: &str| StateError::Field {
            path: path.to_path_buf(),
            field: field.to_string(),
            message: message.to_string(),
        };
        let mut take = |key: &str| map.remove(key).filter(|v| *v != PyValue::Null);
        let uint = |key: &str, v: Option<PyValue>, default: u64| -> Result<u64, StateError> {
            match v {
                None => Ok(default),
                Some(PyValue::Int(i)) if i >= 0 => Ok(i as u64),
                // HF's dataclass allows floats for the step intervals (ratios are resolved to
                // ints before saving, but a float such as 500.0 may appear).
                Some(PyValue::Float(f)) if f >= 0.0 && f.fract() == 0.0 => Ok(f as u64),
                Some(_) => Err(field_error(key, "expected a whole number >= 0")),
            }
        };
        let float = |key: &str, v: Option<PyValue>| -> Result<Option<f64>, StateError> {
            match v {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| field_error(key, "expected a number")),
            }
        };
        let boolean = |key: &str, v: Option<PyValue>, default: bool| -> Result<bool, StateError> {
            match v {
                None => Ok(default),
                Some(PyValue::Bool(b)) => Ok(b),
                Some(_) => Err(field_error(key, "expected true or false")),
            }
        };
        let string = |key: &str, v: Option<PyValue>| -> Result<Option<String>, StateError> {
            match v {
                None => Ok(None),
                Some(PyValue::Str(s)) => Ok(Some(s)),
                Some(_) => Err(field_error(key, "expected a string")),
            }
        };
        let mut log_history = Vec::new();
        match take("log_history") {
            None => {}
            Some(PyValue::List(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    let PyValue::Dict(mut entry) = item else {
                        return Err(field_error(
                            &format!("log_history[{i}]"),
                            "expected an object",
                        ));
                    };
                    let at = |k: &str| format!("log_history[{i}].{k}");
                    let mut get = |k: &str| entry.remove(k).filter(|v| *v != PyValue::Null);
                    let step = uint(&at("step"), get("step"), 0)?;
                    let epoch = float(&at("epoch"), get("epoch"))?;
                    let loss = float(&at("loss"), get("loss"))?;
                    let learning_rate = float(&at("learning_rate"), get("learning_rate"))?;
                    let grad_norm = float(&at("grad_norm"), get("grad_norm"))?;
                    log_history.push(LogEntry {
                        step,
                        epoch,
                        loss,
                        learning_rate,
                        grad_norm,
                        extra: entry,
                    });
                }
            }
            Some(_) => return Err(field_error("log_history", "expected a list")),
        }
        let stateful_callbacks = match take("stateful_callbacks") {
            None => BTreeMap::new(),
            Some(PyValue::Dict(d)) => d,
            Some(_) => return Err(field_error("stateful_callbacks", "expected an object")),
        };
        let state = TrainerState {
            epoch: float("epoch", take("epoch"))?.unwrap_or(0.0),
            global_step: uint("global_step", take("global_step"), 0)?,
            max_steps: uint("max_steps", take("max_steps"), 0)?,
            logging_steps: uint("logging_steps", take("logging_steps"), 500)?,
            eval_steps: uint("eval_steps", take("eval_steps"), 500)?,
            save_steps: uint("save_steps", take("save_steps"), 500)?,
            train_batch_size: match take("train_batch_size") {
                None => None,
                v => Some(uint("train_batch_size", v, 0)?),
            },
            num_train_epochs: uint("num_train_epochs", take("num_train_epochs"), 0)?,
            num_input_tokens_seen: uint("num_input_tokens_seen", take("num_input_tokens_seen"), 0)?,
            total_flos: float("total_flos", take("total_flos"))?.unwrap_or(0.0),
            log_history,
            best_metric: float("best_metric", take("best_metric"))?,
            best_global_step: match take("best_global_step") {
                None => None,
                v => Some(uint("best_global_step", v, 0)?),
            },
            best_model_checkpoint: string("best_model_checkpoint", take("best_model_checkpoint"))?,
            is_local_process_zero: boolean(
                "is_local_process_zero",
                take("is_local_process_zero"),
                true,
            )?,
            is_world_process_zero: boolean(
                "is_world_process_zero",
                take("is_world_process_zero"),
                true,
            )?,
            is_hyper_param_search: boolean(
                "is_hyper_param_search",
                take("is_hyper_param_search"),
                false,
            )?,
            trial_name: string("trial_name", take("trial_name"))?,
            trial_params: take("trial_params"),
            stateful_callbacks,
            extra: BTreeMap::new(),
        };
        // What is left are keys this version does not know (nulls of known keys were dropped).
        let mut state = state;
        state.extra = map;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_state_round_trips() {
        let mut state = TrainerState::new(10, 1, 5, 1, 1);
        state.global_step = 2;
        state.epoch = epoch_progress(0, 4, 20);
        state
            .log_history
            .push(LogEntry::train_step(1, 0.1, 2.5, 0.0, Some(f64::NAN)));
        let text = state.to_json();
        assert!(text.contains("\"grad_norm\": NaN"), "{text}");
        let back = TrainerState::parse(&text, Path::new("t.json")).unwrap();
        assert_eq!(back.to_json(), text);
        assert_eq!(back.epoch, 0.2);
    }

    #[test]
    fn bad_fields_are_named() {
        let err = TrainerState::parse("{\"global_step\": \"x\"}", Path::new("s.json")).unwrap_err();
        assert!(err.to_string().contains("s.json") && err.to_string().contains("global_step"));
    }
}
