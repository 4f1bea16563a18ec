//! Training parameters: the team's names, VILA/HF defaults, and layering
//! defaults < config file < environment < command-line flags.
//!
//! - **Names** are VILA's / HF's `TrainingArguments` names (snake_case in files, kebab-case
//!   flags: `learning_rate`, `--learning-rate`). The table with defaults and help is
//!   `config/fields.rs`; `crates/trainer/examples/team.yaml` is the team's recipe.
//! - **Config file** (`--config FILE`): YAML (`.yaml`/`.yml`) or JSON (`.json`), a mapping of
//!   parameter names to values. An unknown key is an error naming the file and the key.
//! - **Environment**: `DATA_MIXTURE`, `GLOBAL_TRAIN_BATCH_SIZE`, `GRADIENT_ACCUMULATION_STEPS`,
//!   the variables VILA's `scripts/setups/train.sh` reads. An empty variable counts as unset
//!   (bash `${VAR:-default}`). The library never reads the environment itself: the binary passes
//!   it to [`TrainConfig::resolve`].
//! - **Batch arithmetic** as `train.sh`: the global batch is split over
//!   `world_size × per_device_train_batch_size × gradient_accumulation_steps`, `world_size`
//!   being the number of devices. Given a global batch, the accumulation steps are derived (or,
//!   when the accumulation steps are given instead, the per-device batch, which is the direction
//!   `train.sh` goes). bash's integer division silently rounds down; here a remainder is an
//!   error naming the numbers.

mod cli;
mod fields;
mod types;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

pub use cli::ParameterArgs;
pub use types::{DeviceSpec, Dtype, ImageAspectRatio, device_list_string};

use fields::{FIELDS, Field, FieldDefault, Val};

/// Where a parameter's value came from; errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// Computed from other parameters (the batch arithmetic).
    Derived,
    /// A config file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag (`--lora-r`).
    Flag(&'static str),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::Derived => write!(f, "derived"),
            Source::File(path) => write!(f, "from {}", path.display()),
            Source::Env(var) => write!(f, "from environment variable {var}"),
            Source::Flag(flag) => write!(f, "from --{flag}"),
        }
    }
}

fn did_you_mean(suggestion: &Option<&'static str>) -> String {
    suggestion
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// Everything that can be wrong with the parameters.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The config file's extension is neither YAML nor JSON.
    #[error("{}: config file must end in .yaml, .yml or .json", path.display())]
    FileExtension { path: PathBuf },
    /// The config file does not parse.
    #[error("{}: invalid {format}: {message}", path.display())]
    ParseFile {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    /// The config file is not a mapping at the top level.
    #[error("{}: expected a mapping of parameter names to values at the top level", path.display())]
    NotAMapping { path: PathBuf },
    /// The config file has a key that is not a parameter.
    #[error("{}: unknown parameter `{key}`{}", path.display(), did_you_mean(suggestion))]
    UnknownKey {
        path: PathBuf,
        key: String,
        suggestion: Option<&'static str>,
    },
    /// An override names no parameter.
    #[error("unknown parameter `--{name}`{}", did_you_mean(suggestion))]
    UnknownParameter {
        name: String,
        suggestion: Option<&'static str>,
    },
    /// A value does not parse as the parameter's type.
    #[error("{field}: invalid value {value} ({origin}): expected {expected}")]
    InvalidValue {
        field: &'static str,
        value: String,
        origin: Source,
        expected: &'static str,
    },
    /// A required parameter is missing.
    #[error(
        "missing required parameter {field}: pass --{flag} or set `{field}` in the config file"
    )]
    Missing {
        field: &'static str,
        flag: &'static str,
    },
    /// The global batch does not split into whole accumulation steps.
    #[error(
        "global_train_batch_size {global} ({origin}) is not divisible by world_size {world_size} \
         x per_device_train_batch_size {per_device} = {product}, so gradient_accumulation_steps \
         would not be a whole number"
    )]
    GasNotDivisible {
        global: u64,
        origin: Source,
        world_size: u64,
        per_device: u64,
        product: u64,
    },
    /// The global batch does not split into whole per-device batches.
    #[error(
        "global_train_batch_size {global} ({origin}) is not divisible by world_size {world_size} \
         x gradient_accumulation_steps {gas} = {product}, so per_device_train_batch_size would \
         not be a whole number"
    )]
    PerDeviceNotDivisible {
        global: u64,
        origin: Source,
        world_size: u64,
        gas: u64,
        product: u64,
    },
    /// All three batch parameters were given and disagree.
    #[error(
        "global_train_batch_size {global} != world_size {world_size} x \
         per_device_train_batch_size {per_device} x gradient_accumulation_steps {gas} = {product}; \
         give at most two of the three"
    )]
    BatchMismatch {
        global: u64,
        world_size: u64,
        per_device: u64,
        gas: u64,
        product: u64,
    },
    /// A value is of the right type but out of range, or parameters contradict each other.
    #[error("{field} = {value} ({origin}): {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        origin: Source,
        reason: String,
    },
}

/// The resolved training parameters.
///
/// Built by [`TrainConfig::resolve`], which also runs [`TrainConfig::validate`]. Serializes to
/// the snake_case names, so a saved config can be passed back with `--config`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    /// HF NVILA checkpoint folder.
    pub model_path: PathBuf,
    /// VILA dataset registry YAML.
    pub registry: PathBuf,
    /// Dataset names joined by `+` (VILA `DATA_MIXTURE`).
    pub data_mixture: String,
    /// Run folder.
    pub output_dir: PathBuf,
    /// Training devices; `world_size` is their number.
    #[serde(serialize_with = "types::serialize_devices")]
    pub device: Vec<DeviceSpec>,
    /// Compute dtype of the frozen model.
    pub dtype: Dtype,
    /// Micro-batch per device.
    pub per_device_train_batch_size: u64,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation_steps: u64,
    /// Samples per optimizer step over all devices
    /// (= world_size × per_device_train_batch_size × gradient_accumulation_steps).
    pub global_train_batch_size: u64,
    /// Epochs (fractional allowed).
    pub num_train_epochs: f64,
    /// Optimizer steps; overrides `num_train_epochs` when set.
    pub max_steps: Option<u64>,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Warmup fraction of `max_steps`.
    pub warmup_ratio: f64,
    /// AdamW weight decay of the decay group.
    pub weight_decay: f64,
    /// AdamW β1.
    pub adam_beta1: f64,
    /// AdamW β2.
    pub adam_beta2: f64,
    /// AdamW ε.
    pub adam_epsilon: f64,
    /// Global gradient-norm clip (≤ 0 disables).
    pub max_grad_norm: f64,
    /// Max tokens per sample.
    pub model_max_length: u64,
    /// Data-loader worker threads.
    pub dataloader_num_workers: u64,
    /// Queries per attention block in the layer recompute (ours).
    pub attention_chunk: u64,
    /// Positions per chunk of the loss head (ours).
    pub loss_chunk: u64,
    /// Positions per block of the position-wise part of the layer recompute (ours).
    pub layer_chunk: u64,
    /// Image preprocessing mode.
    pub image_aspect_ratio: ImageAspectRatio,
    /// Train the projector.
    pub tune_mm_projector: bool,
    /// Train the vision tower.
    pub tune_vision_tower: bool,
    /// Train the LLM.
    pub tune_language_model: bool,
    /// Use LoRA.
    pub lora_enable: bool,
    /// LoRA rank.
    pub lora_r: u64,
    /// LoRA alpha.
    pub lora_alpha: u64,
    /// LoRA dropout.
    pub lora_dropout: f64,
    /// LoRA on the LLM.
    pub lora_llm: bool,
    /// LoRA on the vision tower.
    pub lora_vt: bool,
    /// Checkpoint interval in optimizer steps.
    pub save_steps: u64,
    /// Max checkpoints kept (`None`: all).
    pub save_total_limit: Option<u64>,
    /// Logging interval in optimizer steps.
    pub logging_steps: u64,
    /// Seed.
    pub seed: u64,
    #[serde(skip)]
    origins: BTreeMap<&'static str, Source>,
}

/// Values by field name, each with its source.
type Layers = BTreeMap<&'static str, (Val, Source)>;

fn parse_text(field: &'static Field, text: &str, origin: Source) -> Result<Val, ConfigError> {
    field
        .kind
        .parse_text(text)
        .ok_or_else(|| ConfigError::InvalidValue {
            field: field.name,
            value: format!("{text:?}"),
            origin,
            expected: field.kind.expected(),
        })
}

/// Reads a YAML or JSON config file into `(key, value)` pairs.
fn read_file(path: &Path) -> Result<serde_json::Map<String, Value>, ConfigError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let value: Value = match extension.as_deref() {
        Some("yaml" | "yml") => {
            serde_yaml::from_str(&text).map_err(|e| ConfigError::ParseFile {
                path: path.to_path_buf(),
                format: "YAML",
                message: e.to_string(),
            })?
        }
        Some("json") => serde_json::from_str(&text).map_err(|e| ConfigError::ParseFile {
            path: path.to_path_buf(),
            format: "JSON",
            message: e.to_string(),
        })?,
        _ => {
            return Err(ConfigError::FileExtension {
                path: path.to_path_buf(),
            });
        }
    };
    match value {
        Value::Object(map) => Ok(map),
        // An empty YAML document is `null`: no parameters.
        Value::Null => Ok(serde_json::Map::new()),
        _ => Err(ConfigError::NotAMapping {
            path: path.to_path_buf(),
        }),
    }
}

impl TrainConfig {
    /// Resolves the parameters: defaults, then `file` (YAML or JSON by extension), then the
    /// environment variables VILA reads (looked up in `env`), then `overrides` (`(name, value)`
    /// with snake_case or kebab-case names, later ones winning), then the batch arithmetic and
    /// [`TrainConfig::validate`].
    pub fn resolve(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &[(String, String)],
    ) -> Result<TrainConfig, ConfigError> {
        let mut layers: Layers = BTreeMap::new();
        for field in FIELDS {
            if let FieldDefault::Text(text) = field.default {
                layers.insert(
                    field.name,
                    (parse_text(field, text, Source::Default)?, Source::Default),
                );
            }
        }
        if let Some(path) = file {
            for (key, value) in read_file(path)? {
                let Some(field) = fields::by_name(&key) else {
                    return Err(ConfigError::UnknownKey {
                        path: path.to_path_buf(),
                        suggestion: fields::suggestion(&key),
                        key,
                    });
                };
                let origin = Source::File(path.to_path_buf());
                let parsed =
                    field
                        .kind
                        .parse_json(&value)
                        .ok_or_else(|| ConfigError::InvalidValue {
                            field: field.name,
                            value: fields::show_json(&value),
                            origin: origin.clone(),
                            expected: field.kind.expected(),
                        })?;
                layers.insert(field.name, (parsed, origin));
            }
        }
        for field in FIELDS {
            let Some(var) = field.env else { continue };
            if let Some(text) = env.get(var).filter(|t| !t.trim().is_empty()) {
                let parsed = parse_text(field, text, Source::Env(var))?;
                layers.insert(field.name, (parsed, Source::Env(var)));
            }
        }
        for (name, text) in overrides {
            let Some(field) = fields::by_flag(name.trim_start_matches('-')) else {
                return Err(ConfigError::UnknownParameter {
                    name: name.trim_start_matches('-').to_string(),
                    suggestion: fields::suggestion(name),
                });
            };
            let parsed = parse_text(field, text, Source::Flag(field.flag))?;
            layers.insert(field.name, (parsed, Source::Flag(field.flag)));
        }
        let mut config = Self::from_layers(layers)?;
        config.derive_batch()?;
        config.validate()?;
        Ok(config)
    }

    /// Builds the struct from the layered values; required parameters must be present.
    fn from_layers(mut layers: Layers) -> Result<TrainConfig, ConfigError> {
        let origins: BTreeMap<&'static str, Source> = layers
            .iter()
            .map(|(name, (_, origin))| (*name, origin.clone()))
            .collect();
        let mut take = |name: &'static str| -> Result<Option<Val>, ConfigError> {
            match layers.remove(name) {
                Some((value, _)) => Ok(Some(value)),
                None => match fields::by_name(name).map(|f| f.default) {
                    Some(FieldDefault::Required) => Err(ConfigError::Missing {
                        field: name,
                        flag: fields::by_name(name).map_or(name, |f| f.flag),
                    }),
                    _ => Ok(None),
                },
            }
        };
        // The layers hold values parsed with each field's own kind, so the patterns below match
        // by construction; a mismatch is a bug in the field table.
        macro_rules! get {
            ($name:literal, $variant:ident) => {
                match take($name)? {
                    Some(Val::$variant(v)) => v,
                    other => unreachable!("parameter {} holds {:?}", $name, other),
                }
            };
        }
        let global_train_batch_size = match take("global_train_batch_size")? {
            Some(Val::U64(v)) => v,
            None => 0,
            other => unreachable!("global_train_batch_size holds {other:?}"),
        };
        let max_steps = match take("max_steps")? {
            Some(Val::OptU64(v)) => v,
            None => None,
            other => unreachable!("max_steps holds {other:?}"),
        };
        let save_total_limit = match take("save_total_limit")? {
            Some(Val::OptU64(v)) => v,
            None => None,
            other => unreachable!("save_total_limit holds {other:?}"),
        };
        Ok(TrainConfig {
            model_path: get!("model_path", Path),
            registry: get!("registry", Path),
            data_mixture: get!("data_mixture", Str),
            output_dir: get!("output_dir", Path),
            device: get!("device", Devices),
            dtype: get!("dtype", Dtype),
            per_device_train_batch_size: get!("per_device_train_batch_size", U64),
            gradient_accumulation_steps: get!("gradient_accumulation_steps", U64),
            global_train_batch_size,
            num_train_epochs: get!("num_train_epochs", F64),
            max_steps,
            learning_rate: get!("learning_rate", F64),
            warmup_ratio: get!("warmup_ratio", F64),
            weight_decay: get!("weight_decay", F64),
            adam_beta1: get!("adam_beta1", F64),
            adam_beta2: get!("adam_beta2", F64),
            adam_epsilon: get!("adam_epsilon", F64),
            max_grad_norm: get!("max_grad_norm", F64),
            model_max_length: get!("model_max_length", U64),
            dataloader_num_workers: get!("dataloader_num_workers", U64),
            attention_chunk: get!("attention_chunk", U64),
            loss_chunk: get!("loss_chunk", U64),
            layer_chunk: get!("layer_chunk", U64),
            image_aspect_ratio: get!("image_aspect_ratio", AspectRatio),
            tune_mm_projector: get!("tune_mm_projector", Bool),
            tune_vision_tower: get!("tune_vision_tower", Bool),
            tune_language_model: get!("tune_language_model", Bool),
            lora_enable: get!("lora_enable", Bool),
            lora_r: get!("lora_r", U64),
            lora_alpha: get!("lora_alpha", U64),
            lora_dropout: get!("lora_dropout", F64),
            lora_llm: get!("lora_llm", Bool),
            lora_vt: get!("lora_vt", Bool),
            save_steps: get!("save_steps", U64),
            save_total_limit,
            logging_steps: get!("logging_steps", U64),
            seed: get!("seed", U64),
            origins,
        })
    }

    /// Where `field`'s value came from ([`Source::Default`] for unknown names).
    pub fn origin(&self, field: &str) -> Source {
        self.origins.get(field).cloned().unwrap_or(Source::Default)
    }

    fn is_given(&self, field: &str) -> bool {
        !matches!(self.origin(field), Source::Default | Source::Derived)
    }

    /// Number of devices (ranks).
    pub fn world_size(&self) -> u64 {
        self.device.len() as u64
    }

    /// The AdamW hyper-parameters of this config.
    pub fn adamw(&self) -> crate::optim::AdamWConfig {
        crate::optim::AdamWConfig {
            beta1: self.adam_beta1,
            beta2: self.adam_beta2,
            eps: self.adam_epsilon,
            weight_decay: self.weight_decay,
        }
    }

    fn invalid(
        &self,
        field: &'static str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            field,
            value: value.to_string(),
            origin: self.origin(field),
            reason: reason.into(),
        }
    }

    /// `train.sh`'s batch arithmetic (see the module docs).
    fn derive_batch(&mut self) -> Result<(), ConfigError> {
        let world_size = self.world_size();
        for (field, value) in [
            (
                "per_device_train_batch_size",
                self.per_device_train_batch_size,
            ),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps,
            ),
        ] {
            if value == 0 {
                return Err(self.invalid(field, value, "must be at least 1"));
            }
        }
        if world_size == 0 {
            return Err(self.invalid("device", "", "at least one device is needed"));
        }
        let per_device = self.per_device_train_batch_size;
        let gas = self.gradient_accumulation_steps;
        if !self.is_given("global_train_batch_size") {
            self.global_train_batch_size = world_size * per_device * gas;
            self.origins
                .insert("global_train_batch_size", Source::Derived);
            return Ok(());
        }
        let global = self.global_train_batch_size;
        if global == 0 {
            return Err(self.invalid("global_train_batch_size", global, "must be at least 1"));
        }
        let origin = self.origin("global_train_batch_size");
        match (
            self.is_given("per_device_train_batch_size"),
            self.is_given("gradient_accumulation_steps"),
        ) {
            (true, true) => {
                let product = world_size * per_device * gas;
                if product != global {
                    return Err(ConfigError::BatchMismatch {
                        global,
                        world_size,
                        per_device,
                        gas,
                        product,
                    });
                }
            }
            (false, true) => {
                let product = world_size * gas;
                if !global.is_multiple_of(product) {
                    return Err(ConfigError::PerDeviceNotDivisible {
                        global,
                        origin,
                        world_size,
                        gas,
                        product,
                    });
                }
                self.per_device_train_batch_size = global / product;
                self.origins
                    .insert("per_device_train_batch_size", Source::Derived);
            }
            (_, false) => {
                let product = world_size * per_device;
                if !global.is_multiple_of(product) {
                    return Err(ConfigError::GasNotDivisible {
                        global,
                        origin,
                        world_size,
                        per_device,
                        product,
                    });
                }
                self.gradient_accumulation_steps = global / product;
                self.origins
                    .insert("gradient_accumulation_steps", Source::Derived);
            }
        }
        Ok(())
    }

    /// The step's block sizes (`attention_chunk`, `layer_chunk`, `loss_chunk`).
    pub fn chunks(&self) -> crate::step::Chunks {
        crate::step::Chunks {
            loss_rows: self.loss_chunk as usize,
            attention_queries: self.attention_chunk as usize,
            layer_rows: self.layer_chunk as usize,
        }
    }

    /// Checks ranges and consistency; each error names the parameter, its value and where the
    /// value came from.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive_finite = |field: &'static str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(self.invalid(field, value, "must be a finite number > 0"))
            }
        };
        let at_least_one = |field: &'static str, value: u64| {
            if value >= 1 {
                Ok(())
            } else {
                Err(self.invalid(field, value, "must be at least 1"))
            }
        };
        if self.data_mixture.trim().is_empty() {
            return Err(self.invalid("data_mixture", "\"\"", "names no dataset"));
        }
        for (field, path) in [
            ("model_path", &self.model_path),
            ("registry", &self.registry),
            ("output_dir", &self.output_dir),
        ] {
            if path.as_os_str().is_empty() {
                return Err(self.invalid(field, "\"\"", "is empty"));
            }
        }
        if self.device.is_empty() {
            return Err(self.invalid("device", "", "at least one device is needed"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for device in &self.device {
            if !seen.insert(device) {
                return Err(self.invalid(
                    "device",
                    device_list_string(&self.device),
                    format!("{device} is listed twice"),
                ));
            }
        }
        at_least_one(
            "per_device_train_batch_size",
            self.per_device_train_batch_size,
        )?;
        at_least_one(
            "gradient_accumulation_steps",
            self.gradient_accumulation_steps,
        )?;
        at_least_one("global_train_batch_size", self.global_train_batch_size)?;
        let product =
            self.world_size() * self.per_device_train_batch_size * self.gradient_accumulation_steps;
        if product != self.global_train_batch_size {
            return Err(ConfigError::BatchMismatch {
                global: self.global_train_batch_size,
                world_size: self.world_size(),
                per_device: self.per_device_train_batch_size,
                gas: self.gradient_accumulation_steps,
                product,
            });
        }
        match self.max_steps {
            Some(0) => {
                return Err(self.invalid(
                    "max_steps",
                    0,
                    "must be at least 1 (leave it unset to train by epochs)",
                ));
            }
            Some(_) => {}
            None => positive_finite("num_train_epochs", self.num_train_epochs)?,
        }
        positive_finite("learning_rate", self.learning_rate)?;
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return Err(self.invalid("warmup_ratio", self.warmup_ratio, "must be in [0, 1]"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(self.invalid(
                "weight_decay",
                self.weight_decay,
                "must be a finite number >= 0",
            ));
        }
        for (field, value) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&value) {
                return Err(self.invalid(field, value, "must be in [0, 1)"));
            }
        }
        if !(self.adam_epsilon.is_finite() && self.adam_epsilon >= 0.0) {
            return Err(self.invalid(
                "adam_epsilon",
                self.adam_epsilon,
                "must be a finite number >= 0",
            ));
        }
        if self.max_grad_norm.is_nan() || self.max_grad_norm == f64::INFINITY {
            return Err(self.invalid(
                "max_grad_norm",
                self.max_grad_norm,
                "must be finite (<= 0 disables clipping)",
            ));
        }
        at_least_one("model_max_length", self.model_max_length)?;
        at_least_one("attention_chunk", self.attention_chunk)?;
        at_least_one("loss_chunk", self.loss_chunk)?;
        at_least_one("layer_chunk", self.layer_chunk)?;
        at_least_one("lora_r", self.lora_r)?;
        at_least_one("lora_alpha", self.lora_alpha)?;
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(self.invalid("lora_dropout", self.lora_dropout, "must be in [0, 1)"));
        }
        at_least_one("save_steps", self.save_steps)?;
        at_least_one("logging_steps", self.logging_steps)?;
        if self.save_total_limit == Some(0) {
            return Err(self.invalid(
                "save_total_limit",
                0,
                "would keep no checkpoint; leave it unset to keep all",
            ));
        }
        if self.lora_enable && !self.lora_llm && !self.lora_vt {
            return Err(self.invalid(
                "lora_enable",
                true,
                "neither lora_llm nor lora_vt is set, so LoRA would target no module",
            ));
        }
        if !self.lora_enable
            && !self.tune_mm_projector
            && !self.tune_vision_tower
            && !self.tune_language_model
        {
            return Err(self.invalid(
                "lora_enable",
                false,
                "nothing to train: enable LoRA (lora_enable with lora_llm / lora_vt) or a tune_* part",
            ));
        }
        Ok(())
    }

    /// The config as pretty JSON (snake_case keys), loadable again with `--config`.
    pub fn to_json_pretty(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn required() -> Vec<(String, String)> {
        [
            ("model_path", "m"),
            ("registry", "r.yaml"),
            ("data_mixture", "wts"),
            ("output_dir", "out"),
            ("lora_enable", "true"),
            ("lora_llm", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn defaults_are_hf_and_vila() {
        let c = TrainConfig::resolve(None, &HashMap::new(), &required()).unwrap();
        assert_eq!(
            (c.adam_beta1, c.adam_beta2, c.adam_epsilon),
            (0.9, 0.999, 1e-8)
        );
        assert_eq!((c.seed, c.max_grad_norm, c.learning_rate), (42, 1.0, 5e-5));
        assert_eq!((c.lora_r, c.lora_alpha, c.lora_dropout), (64, 16, 0.05));
        assert_eq!(c.model_max_length, 512);
        assert_eq!(c.image_aspect_ratio, ImageAspectRatio::Resize);
        assert_eq!(
            (c.global_train_batch_size, c.gradient_accumulation_steps),
            (1, 1)
        );
        assert_eq!(c.origin("global_train_batch_size"), Source::Derived);
        assert_eq!(c.origin("lora_r"), Source::Default);
        assert_eq!(c.origin("lora_llm"), Source::Flag("lora-llm"));
    }

    #[test]
    fn missing_required_names_the_flag() {
        let err = TrainConfig::resolve(None, &HashMap::new(), &[]).unwrap_err();
        assert!(err.to_string().contains("--model-path"), "{err}");
    }
}
