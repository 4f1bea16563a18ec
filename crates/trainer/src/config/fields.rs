//! The table of parameters: name, flag, type, environment variable, default and help, and the
//! parsing of one value from text (flags, environment, defaults) or from a config file.
//!
//! Defaults are VILA's (`llava/train/args.py`) where VILA defines the parameter, else HF
//! `TrainingArguments`'; the deviations are marked "ours" with the reason.

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

use super::types::{DeviceSpec, Dtype, ImageAspectRatio};

/// The type of a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    U64,
    F64,
    /// Unset (`null`, `none`, or HF's `-1`) or a whole number.
    OptU64,
    Str,
    Path,
    Devices,
    Dtype,
    AspectRatio,
}

impl Kind {
    /// What a valid value looks like, for error messages.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Kind::Bool => "true or false",
            Kind::U64 => "a whole number >= 0",
            Kind::F64 => "a number",
            Kind::OptU64 => "a whole number >= 0, or none / -1 for unset",
            Kind::Str => "a non-empty string",
            Kind::Path => "a path",
            Kind::Devices => "cpu, cuda:N, or a comma-separated list such as cuda:0,cuda:1",
            Kind::Dtype => "f32, bf16 or f16",
            Kind::AspectRatio => "resize, pad, dynamic or dynamic_s2",
        }
    }

    /// The placeholder shown in `--help`.
    pub(crate) fn value_name(self) -> &'static str {
        match self {
            Kind::Bool => "BOOL",
            Kind::U64 | Kind::OptU64 => "N",
            Kind::F64 => "FLOAT",
            Kind::Str => "NAME",
            Kind::Path => "PATH",
            Kind::Devices => "DEVICES",
            Kind::Dtype => "DTYPE",
            Kind::AspectRatio => "MODE",
        }
    }
}

/// Where a parameter's default comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldDefault {
    /// Must be given.
    Required,
    /// Computed from other parameters when not given.
    Derived,
    /// Unset (an `Option` field).
    Unset,
    /// This text, parsed like a flag value.
    Text(&'static str),
}

/// One parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// snake_case name, used in config files.
    pub name: &'static str,
    /// kebab-case flag without the dashes.
    pub flag: &'static str,
    pub kind: Kind,
    /// Environment variable that sets it (VILA's `scripts/setups/train.sh`).
    pub env: Option<&'static str>,
    pub default: FieldDefault,
    pub help: &'static str,
}

const fn field(
    name: &'static str,
    flag: &'static str,
    kind: Kind,
    default: FieldDefault,
    help: &'static str,
) -> Field {
    Field {
        name,
        flag,
        kind,
        env: None,
        default,
        help,
    }
}

const fn env_field(
    name: &'static str,
    flag: &'static str,
    kind: Kind,
    env: &'static str,
    default: FieldDefault,
    help: &'static str,
) -> Field {
    Field {
        name,
        flag,
        kind,
        env: Some(env),
        default,
        help,
    }
}

use FieldDefault::{Derived, Required, Text, Unset};

/// Every parameter, in `--help` order.
pub(crate) const FIELDS: &[Field] = &[
    field(
        "model_path",
        "model-path",
        Kind::Path,
        Required,
        "HF NVILA checkpoint folder to fine-tune (VILA `model_name_or_path`)",
    ),
    field(
        "registry",
        "registry",
        Kind::Path,
        Required,
        "VILA dataset registry YAML the mixture names refer to",
    ),
    env_field(
        "data_mixture",
        "data-mixture",
        Kind::Str,
        "DATA_MIXTURE",
        Required,
        "dataset names joined by '+', as VILA's DATA_MIXTURE",
    ),
    field(
        "output_dir",
        "output-dir",
        Kind::Path,
        Required,
        "run folder: checkpoint-N/, the final adapter, metrics",
    ),
    field(
        "device",
        "device",
        Kind::Devices,
        Text("cpu"),
        "training devices; world_size is their number [default: cpu (ours; HF probes CUDA)]",
    ),
    field(
        "dtype",
        "dtype",
        Kind::Dtype,
        Text("f32"),
        "compute dtype of the frozen model [default: f32, HF without --bf16]",
    ),
    field(
        "per_device_train_batch_size",
        "per-device-train-batch-size",
        Kind::U64,
        Text("1"),
        "micro-batch per device [default: 1 (ours; HF 8 does not fit 7B at 4096 tokens)]",
    ),
    env_field(
        "gradient_accumulation_steps",
        "gradient-accumulation-steps",
        Kind::U64,
        "GRADIENT_ACCUMULATION_STEPS",
        Text("1"),
        "micro-batches per optimizer step; derived from global_train_batch_size when that is set",
    ),
    env_field(
        "global_train_batch_size",
        "global-train-batch-size",
        Kind::U64,
        "GLOBAL_TRAIN_BATCH_SIZE",
        Derived,
        "samples per optimizer step over all devices [default: devices x per-device x accumulation]",
    ),
    field(
        "num_train_epochs",
        "num-train-epochs",
        Kind::F64,
        Text("3.0"),
        "epochs (fractional allowed) [default: 3.0, HF]",
    ),
    field(
        "max_steps",
        "max-steps",
        Kind::OptU64,
        Unset,
        "optimizer steps; overrides num_train_epochs when set [default: unset]",
    ),
    field(
        "learning_rate",
        "learning-rate",
        Kind::F64,
        Text("5e-5"),
        "peak learning rate of the cosine schedule [default: 5e-5, HF]",
    ),
    field(
        "warmup_ratio",
        "warmup-ratio",
        Kind::F64,
        Text("0.0"),
        "linear warmup over ceil(ratio x max_steps) steps [default: 0.0, HF]",
    ),
    field(
        "weight_decay",
        "weight-decay",
        Kind::F64,
        Text("0.0"),
        "AdamW decoupled weight decay of non-bias, non-norm params [default: 0.0, HF]",
    ),
    field(
        "adam_beta1",
        "adam-beta1",
        Kind::F64,
        Text("0.9"),
        "AdamW beta1 [default: 0.9, HF]",
    ),
    field(
        "adam_beta2",
        "adam-beta2",
        Kind::F64,
        Text("0.999"),
        "AdamW beta2 [default: 0.999, HF]",
    ),
    field(
        "adam_epsilon",
        "adam-epsilon",
        Kind::F64,
        Text("1e-8"),
        "AdamW epsilon [default: 1e-8, HF; burn's is 1e-5]",
    ),
    field(
        "max_grad_norm",
        "max-grad-norm",
        Kind::F64,
        Text("1.0"),
        "global gradient-norm clip; <= 0 disables [default: 1.0, HF]",
    ),
    field(
        "model_max_length",
        "model-max-length",
        Kind::U64,
        Text("512"),
        "max tokens per sample, truncated before and after image expansion [default: 512, VILA]",
    ),
    field(
        "dataloader_num_workers",
        "dataloader-num-workers",
        Kind::U64,
        Text("0"),
        "worker threads preparing samples [default: 0, HF]",
    ),
    field(
        "attention_chunk",
        "attention-chunk",
        Kind::U64,
        Text("512"),
        "queries per attention block in the layer recompute; smaller = less GPU memory [default: 512, ours]",
    ),
    field(
        "layer_chunk",
        "layer-chunk",
        Kind::U64,
        Text("1024"),
        "positions per block of o_proj + MLP in the layer recompute; smaller = less GPU memory [default: 1024, ours]",
    ),
    field(
        "loss_chunk",
        "loss-chunk",
        Kind::U64,
        Text("256"),
        "positions per chunk of the loss head (f32 logits of one chunk alive) [default: 256, ours]",
    ),
    field(
        "image_aspect_ratio",
        "image-aspect-ratio",
        Kind::AspectRatio,
        Text("resize"),
        "image preprocessing mode [default: resize, VILA]",
    ),
    field(
        "tune_mm_projector",
        "tune-mm-projector",
        Kind::Bool,
        Text("false"),
        "train the projector [default: false, VILA]",
    ),
    field(
        "tune_vision_tower",
        "tune-vision-tower",
        Kind::Bool,
        Text("false"),
        "train the vision tower [default: false, VILA]",
    ),
    field(
        "tune_language_model",
        "tune-language-model",
        Kind::Bool,
        Text("false"),
        "train the LLM (irrelevant with LoRA: PEFT freezes base weights) [default: false, VILA]",
    ),
    field(
        "lora_enable",
        "lora-enable",
        Kind::Bool,
        Text("false"),
        "use LoRA [default: false, VILA]",
    ),
    field(
        "lora_r",
        "lora-r",
        Kind::U64,
        Text("64"),
        "LoRA rank [default: 64, VILA]",
    ),
    field(
        "lora_alpha",
        "lora-alpha",
        Kind::U64,
        Text("16"),
        "LoRA alpha; scale = alpha / r [default: 16, VILA]",
    ),
    field(
        "lora_dropout",
        "lora-dropout",
        Kind::F64,
        Text("0.05"),
        "LoRA dropout [default: 0.05, VILA]",
    ),
    field(
        "lora_llm",
        "lora-llm",
        Kind::Bool,
        Text("false"),
        "LoRA on the LLM's linear layers [default: false, VILA]",
    ),
    field(
        "lora_vt",
        "lora-vt",
        Kind::Bool,
        Text("false"),
        "LoRA on the vision tower's linear layers [default: false, VILA]",
    ),
    field(
        "save_steps",
        "save-steps",
        Kind::U64,
        Text("500"),
        "checkpoint every N optimizer steps [default: 500, HF]",
    ),
    field(
        "save_total_limit",
        "save-total-limit",
        Kind::OptU64,
        Unset,
        "keep at most N checkpoints [default: unset = keep all, HF]",
    ),
    field(
        "logging_steps",
        "logging-steps",
        Kind::U64,
        Text("500"),
        "log (trainer_state, metrics, progress) every N steps [default: 500, HF]",
    ),
    field(
        "seed",
        "seed",
        Kind::U64,
        Text("42"),
        "seed of sampler order, LoRA init and dropout [default: 42, HF]",
    ),
];

/// The field called `name` (snake_case).
pub(crate) fn by_name(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// The field whose flag is `flag` (kebab-case, without dashes); snake_case is accepted too.
pub(crate) fn by_flag(flag: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.flag == flag || f.name == flag)
}

/// A close known name, for "did you mean" hints (kebab/snake confusion or a small typo).
pub(crate) fn suggestion(unknown: &str) -> Option<&'static str> {
    let normalized = unknown
        .trim_start_matches('-')
        .replace('-', "_")
        .to_ascii_lowercase();
    if let Some(f) = by_name(&normalized) {
        return Some(f.name);
    }
    FIELDS
        .iter()
        .map(|f| (edit_distance(&normalized, f.name), f.name))
        .filter(|&(d, _)| d <= 3)
        .min()
        .map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Bool(bool),
    U64(u64),
    F64(f64),
    OptU64(Option<u64>),
    Str(String),
    Path(PathBuf),
    Devices(Vec<DeviceSpec>),
    Dtype(Dtype),
    AspectRatio(ImageAspectRatio),
}

/// HF's `string_to_bool` (`transformers/hf_argparser.py`): yes/true/t/y/1, no/false/f/n/0.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "t" | "y" | "1" => Some(true),
        "no" | "false" | "f" | "n" | "0" => Some(false),
        _ => None,
    }
}

fn parse_opt_u64(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "" | "none" | "None" | "null" | "-1" => Some(None),
        other => other.parse().ok().map(Some),
    }
}

impl Kind {
    /// Parses text (a flag, an environment variable, a default).
    pub(crate) fn parse_text(self, text: &str) -> Option<Val> {
        match self {
            Kind::Bool => parse_bool(text).map(Val::Bool),
            Kind::U64 => text.trim().parse().ok().map(Val::U64),
            Kind::F64 => text.trim().parse().ok().map(Val::F64),
            Kind::OptU64 => parse_opt_u64(text).map(Val::OptU64),
            Kind::Str => Some(text.trim())
                .filter(|t| !t.is_empty())
                .map(|t| Val::Str(t.to_string())),
            Kind::Path => Some(text)
                .filter(|t| !t.is_empty())
                .map(|t| Val::Path(PathBuf::from(t))),
            Kind::Devices => DeviceSpec::parse_list(text).map(Val::Devices),
            Kind::Dtype => Dtype::parse(text).map(Val::Dtype),
            Kind::AspectRatio => ImageAspectRatio::parse(text).map(Val::AspectRatio),
        }
    }

    /// Parses a value from a YAML / JSON config file. Strings are accepted for every type (a
    /// quoted `"1e-4"` is a number); lists are accepted for devices.
    pub(crate) fn parse_json(self, value: &Value) -> Option<Val> {
        match (self, value) {
            (_, Value::String(text)) => self.parse_text(text),
            (Kind::Bool, Value::Bool(b)) => Some(Val::Bool(*b)),
            (Kind::U64, Value::Number(n)) => n.as_u64().map(Val::U64),
            (Kind::F64, Value::Number(n)) => n.as_f64().map(Val::F64),
            (Kind::OptU64, Value::Null) => Some(Val::OptU64(None)),
            (Kind::OptU64, Value::Number(n)) => match n.as_i64() {
                Some(-1) => Some(Val::OptU64(None)),
                _ => n.as_u64().map(|v| Val::OptU64(Some(v))),
            },
            (Kind::Devices, Value::Array(items)) => {
                let texts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                texts
                    .and_then(|t| DeviceSpec::parse_list(&t.join(",")))
                    .map(Val::Devices)
            }
            _ => None,
        }
    }
}

/// Renders a file value for an error message.
pub(crate) fn show_json(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Bool(b) => write!(f, "{b}"),
            Val::U64(v) => write!(f, "{v}"),
            Val::F64(v) => write!(f, "{v}"),
            Val::OptU64(Some(v)) => write!(f, "{v}"),
            Val::OptU64(None) => write!(f, "unset"),
            Val::Str(s) => write!(f, "{s:?}"),
            Val::Path(p) => write!(f, "{}", p.display()),
            Val::Devices(d) => write!(f, "{}", super::types::device_list_string(d)),
            Val::Dtype(d) => write!(f, "{d}"),
            Val::AspectRatio(a) => write!(f, "{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let mut names = std::collections::BTreeSet::new();
        for f in FIELDS {
            assert!(names.insert(f.name), "{} twice", f.name);
            assert_eq!(f.flag, f.name.replace('_', "-"), "flag of {}", f.name);
            if let Text(text) = f.default {
                assert!(
                    f.kind.parse_text(text).is_some(),
                    "default of {} does not parse",
                    f.name
                );
            }
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggestion("lora-r"), Some("lora_r"));
        assert_eq!(suggestion("learning_rat"), Some("learning_rate"));
        assert_eq!(suggestion("completely_unrelated_key"), None);
    }

    #[test]
    fn values_parse_like_hf() {
        assert_eq!(Kind::Bool.parse_text("True"), Some(Val::Bool(true)));
        assert_eq!(Kind::Bool.parse_text("n"), Some(Val::Bool(false)));
        assert_eq!(Kind::OptU64.parse_text("-1"), Some(Val::OptU64(None)));
        assert_eq!(
            Kind::F64.parse_json(&Value::String("1e-4".into())),
            Some(Val::F64(1e-4))
        );
        assert_eq!(Kind::U64.parse_json(&serde_json::json!(2.5)), None);
        assert_eq!(Kind::U64.parse_json(&serde_json::json!(-2)), None);
        assert_eq!(
            Kind::Devices.parse_json(&serde_json::json!(["cuda:0", "cuda:1"])),
            Some(Val::Devices(vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]))
        );
    }
}
