//! `adapter_config.json`: PEFT's `LoraConfig` as JSON (`peft/tuners/lora/config.py`), written as
//! `PeftConfigMixin.save_pretrained` (`peft/config.py`) does: sorted keys, two-space indent.
//!
//! Fields this crate reads are typed; every other field (`peft_version`, `lora_bias`,
//! `auto_mapping`, ...) is kept verbatim in [`AdapterConfig::extra`], so a load → save round trip
//! loses nothing. Features whose weights or maths this crate does not implement are refused by
//! [`AdapterConfig::validate`] instead of being silently ignored.

use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::LoraError;
use crate::init::LoraInit;
use crate::linear::LoraLinearConfig;
use crate::target::TargetModules;

/// One value or a list (PEFT's `Union[int, list[int]]`, `Union[str, list[str]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// The values as a list.
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(value) => vec![value.clone()],
            OneOrMany::Many(values) => values.clone(),
        }
    }
}

/// PEFT's `init_lora_weights`: `true`, `false` or a method name such as `"gaussian"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InitLoraWeights {
    /// `true` (kaiming A, zero B) or `false` (both random).
    Bool(bool),
    /// A named method (`"gaussian"`, `"pissa"`, `"olora"`, ...).
    Method(String),
}

impl InitLoraWeights {
    /// The matching [`LoraInit`], or `None` for methods that change the base weights (PiSSA,
    /// OLoRA, LoftQ, EVA, CorDA, ...), which this crate does not implement.
    pub fn to_init(&self) -> Option<LoraInit> {
        match self {
            InitLoraWeights::Bool(true) => Some(LoraInit::Kaiming),
            InitLoraWeights::Bool(false) => Some(LoraInit::Random),
            InitLoraWeights::Method(m) if m.eq_ignore_ascii_case("gaussian") => {
                Some(LoraInit::Gaussian)
            }
            InitLoraWeights::Method(_) => None,
        }
    }
}

/// An ordered `{pattern: value}` map (`rank_pattern`, `alpha_pattern`). Order matters: PEFT's
/// `get_pattern_key` takes the first pattern that matches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Patterns<T>(pub Vec<(String, T)>);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Patterns<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Option::<Map<String, Value>>::deserialize(deserializer)?.unwrap_or_default();
        map.into_iter()
            .map(|(k, v)| {
                serde_json::from_value(v)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| serde::de::Error::custom(format!("pattern {k:?}: {e}")))
            })
            .collect::<Result<_, _>>()
            .map(Patterns)
    }
}

impl Serialize for Patterns<usize> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let map: Map<String, Value> = self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect();
        map.serialize(serializer)
    }
}

impl Serialize for Patterns<f64> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let map: Map<String, Value> = self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), number(*v)))
            .collect();
        map.serialize(serializer)
    }
}

/// An integral float as a JSON integer (`16`, as Python writes an int alpha), else a float.
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

fn serialize_number<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    number(*value).serialize(serializer)
}

fn default_peft_type() -> String {
    "LORA".into()
}
fn default_r() -> usize {
    8
}
fn default_alpha() -> f64 {
    8.0
}
fn default_bias() -> String {
    "none".into()
}
fn default_init() -> InitLoraWeights {
    InitLoraWeights::Bool(true)
}

/// `adapter_config.json` of a PEFT LoRA adapter. Missing fields take PEFT's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    /// Always `"LORA"` here.
    #[serde(default = "default_peft_type")]
    pub peft_type: String,
    /// `"CAUSAL_LM"` for VILA; `null` for a bare model.
    #[serde(default)]
    pub task_type: Option<String>,
    /// Rank of every adapter not matched by [`rank_pattern`](Self::rank_pattern).
    #[serde(default = "default_r")]
    pub r: usize,
    /// Scale numerator of every adapter not matched by [`alpha_pattern`](Self::alpha_pattern).
    #[serde(default = "default_alpha", serialize_with = "serialize_number")]
    pub lora_alpha: f64,
    /// Dropout on the adapters' input while training.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Which biases train: only `"none"` is supported.
    #[serde(default = "default_bias")]
    pub bias: String,
    /// Modules to adapt: a regex (full match) or a list of names / `.`-suffixes.
    #[serde(default)]
    pub target_modules: Option<TargetModules>,
    /// Modules never to adapt, matched like `target_modules`.
    #[serde(default)]
    pub exclude_modules: Option<TargetModules>,
    /// Scale by `alpha / √r` instead of `alpha / r`.
    #[serde(default)]
    pub use_rslora: bool,
    /// DoRA: refused.
    #[serde(default)]
    pub use_dora: bool,
    /// GPT-2 `Conv1D` weight layout: refused.
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// How fresh adapters were (or are to be) initialised.
    #[serde(default = "default_init")]
    pub init_lora_weights: InitLoraWeights,
    /// The base model the adapter belongs to (informative).
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// Whole modules saved next to the adapters: refused (use non-LoRA trainables instead).
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    /// PEFT writes `true` on save.
    #[serde(default)]
    pub inference_mode: bool,
    /// Revision of the base model (informative).
    #[serde(default)]
    pub revision: Option<String>,
    /// Only adapt layers with these indices (list targets only).
    #[serde(default)]
    pub layers_to_transform: Option<OneOrMany<usize>>,
    /// The name(s) of the module list whose index `layers_to_transform` reads.
    #[serde(default)]
    pub layers_pattern: Option<OneOrMany<String>>,
    /// Per-module ranks, `{pattern: r}`.
    #[serde(default)]
    pub rank_pattern: Patterns<usize>,
    /// Per-module alphas, `{pattern: alpha}`.
    #[serde(default)]
    pub alpha_pattern: Patterns<f64>,
    /// Every other field, kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Fields this crate does not model, with the value that means "feature off". Anything else
/// changes the weights or the maths, so it is refused rather than ignored.
const OFF_FEATURES: &[(&str, &str)] = &[
    ("lora_bias", "a trainable bias on lora_B"),
    ("target_parameters", "LoRA on raw nn.Parameters"),
    ("layer_replication", "layer replication"),
    ("use_qalora", "QA-LoRA"),
    ("use_bdlora", "block-diagonal LoRA"),
    ("alora_invocation_tokens", "activated LoRA"),
    ("trainable_token_indices", "trainable token embeddings"),
    ("arrow_config", "Arrow routing"),
    ("megatron_config", "Megatron parallel layers"),
];

fn is_off(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Recursively sorts object keys, as Python's `json.dumps(sort_keys=True)`.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(values) => Value::Array(values.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// PEFT's `get_pattern_key` regex for `pattern`: `(.*\.)?(pattern)$`, matched from the start.
fn pattern_regex(pattern: &str) -> Result<Regex, LoraError> {
    Regex::new(&format!(r"^(.*\.)?({pattern})$"))
        .map_err(|e| LoraError::Target(format!("pattern {pattern:?}: {e}")))
}

/// The value of the first pattern that matches `module_path`.
fn pattern_value<T: Copy>(
    patterns: &Patterns<T>,
    module_path: &str,
) -> Result<Option<T>, LoraError> {
    for (pattern, value) in &patterns.0 {
        if pattern_regex(pattern)?.is_match(module_path) {
            return Ok(Some(*value));
        }
    }
    Ok(None)
}

impl AdapterConfig {
    /// A LoRA config with PEFT's defaults for everything but rank, alpha and targets.
    pub fn new(r: usize, lora_alpha: f64, target_modules: TargetModules) -> Self {
        AdapterConfig {
            peft_type: default_peft_type(),
            task_type: None,
            r,
            lora_alpha,
            lora_dropout: 0.0,
            bias: default_bias(),
            target_modules: Some(target_modules),
            exclude_modules: None,
            use_rslora: false,
            use_dora: false,
            fan_in_fan_out: false,
            init_lora_weights: default_init(),
            base_model_name_or_path: None,
            modules_to_save: None,
            inference_mode: false,
            revision: None,
            layers_to_transform: None,
            layers_pattern: None,
            rank_pattern: Patterns::default(),
            alpha_pattern: Patterns::default(),
            extra: Map::new(),
        }
    }

    /// Parses `adapter_config.json` text; `path` names the file in errors. Does not validate.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, LoraError> {
        serde_json::from_str(text).map_err(|e| LoraError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The JSON PEFT would write: keys sorted at every level, two-space indent, no final newline.
    pub fn to_json(&self) -> String {
        // Serializing plain data (strings, numbers, maps) cannot fail.
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        serde_json::to_string_pretty(&sorted(value)).unwrap_or_default()
    }

    /// Reads and [validates](Self::validate) `adapter_config.json`.
    pub fn load(path: &Path) -> Result<Self, LoraError> {
        let text = std::fs::read_to_string(path).map_err(LoraError::io(path))?;
        let config = Self::from_json(&text, path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Refuses what this crate does not implement, naming `path`: another PEFT type, `r = 0`,
    /// DoRA, `fan_in_fan_out`, bias terms, `modules_to_save`, init methods that rewrite the base
    /// (PiSSA, OLoRA, ...), and the variants listed in `extra` (`lora_bias`, `target_parameters`,
    /// ...). Also compiles the rank / alpha patterns.
    pub fn validate(&self, path: &Path) -> Result<(), LoraError> {
        let unsupported = |message: String| LoraError::Unsupported {
            path: path.to_path_buf(),
            message,
        };
        let invalid =
            |message: String| LoraError::InvalidConfig(format!("{}: {message}", path.display()));
        if self.peft_type != "LORA" {
            return Err(unsupported(format!(
                "peft_type {:?}; only \"LORA\" adapters are supported",
                self.peft_type
            )));
        }
        if self.r == 0 {
            return Err(invalid("r = 0; the rank must be positive".into()));
        }
        if !self.lora_alpha.is_finite() {
            return Err(invalid(format!("lora_alpha = {}", self.lora_alpha)));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(invalid(format!(
                "lora_dropout = {} is outside [0, 1)",
                self.lora_dropout
            )));
        }
        if self.use_dora {
            return Err(unsupported(
                "use_dora = true: DoRA (a magnitude vector per module) is not implemented".into(),
            ));
        }
        if self.fan_in_fan_out {
            return Err(unsupported(
                "fan_in_fan_out = true: only nn.Linear-layout weights are supported, not GPT-2 Conv1D"
                    .into(),
            ));
        }
        if self.bias != "none" {
            return Err(unsupported(format!(
                "bias = {:?}: training bias terms is not implemented; only \"none\" is supported",
                self.bias
            )));
        }
        if self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(unsupported(format!(
                "modules_to_save = {:?}: whole-module copies are not supported; save those \
                 modules as non-LoRA trainables instead",
                self.modules_to_save.as_deref().unwrap_or_default()
            )));
        }
        if self.init_lora_weights.to_init().is_none() {
            return Err(unsupported(format!(
                "init_lora_weights = {:?}: methods that rewrite the base weights are not supported",
                self.init_lora_weights
            )));
        }
        for (field, feature) in OFF_FEATURES {
            if let Some(value) = self.extra.get(*field)
                && !is_off(value)
            {
                return Err(unsupported(format!(
                    "{field} = {value}: {feature} is not implemented"
                )));
            }
        }
        for (pattern, r) in &self.rank_pattern.0 {
            if *r == 0 {
                return Err(invalid(format!("rank_pattern {pattern:?} has r = 0")));
            }
        }
        for (pattern, alpha) in &self.alpha_pattern.0 {
            if !alpha.is_finite() {
                return Err(invalid(format!(
                    "alpha_pattern {pattern:?} has alpha = {alpha}"
                )));
            }
        }
        let rank_keys = self.rank_pattern.0.iter().map(|(k, _)| k);
        for pattern in rank_keys.chain(self.alpha_pattern.0.iter().map(|(k, _)| k)) {
            pattern_regex(pattern)?;
        }
        Ok(())
    }

    /// `(r, alpha)` for the module at `module_path`, after `rank_pattern` / `alpha_pattern`.
    pub fn rank_and_alpha(&self, module_path: &str) -> Result<(usize, f64), LoraError> {
        let r = pattern_value(&self.rank_pattern, module_path)?.unwrap_or(self.r);
        let alpha = pattern_value(&self.alpha_pattern, module_path)?.unwrap_or(self.lora_alpha);
        Ok((r, alpha))
    }

    /// The [`LoraLinearConfig`] for the module at `module_path`: rank and alpha after the
    /// patterns, dropout, rsLoRA and init from this config.
    pub fn linear_config(&self, module_path: &str) -> Result<LoraLinearConfig, LoraError> {
        let (r, alpha) = self.rank_and_alpha(module_path)?;
        let init = self.init_lora_weights.to_init().ok_or_else(|| {
            LoraError::InvalidConfig(format!(
                "init_lora_weights = {:?} is not supported",
                self.init_lora_weights
            ))
        })?;
        Ok(LoraLinearConfig::new(r, alpha)
            .with_lora_dropout(self.lora_dropout)
            .with_use_rslora(self.use_rslora)
            .with_init(init))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VILA: &str = r#"{
  "base_model_name_or_path": null,
  "bias": "none",
  "fan_in_fan_out": false,
  "inference_mode": true,
  "init_lora_weights": true,
  "lora_alpha": 16,
  "lora_dropout": 0.05,
  "peft_type": "LORA",
  "peft_version": "0.21.2",
  "r": 64,
  "target_modules": ["llm.model.layers.0.self_attn.q_proj"],
  "task_type": "CAUSAL_LM",
  "use_dora": false,
  "use_rslora": false
}"#;

    fn parse(text: &str) -> AdapterConfig {
        AdapterConfig::from_json(text, Path::new("adapter_config.json")).unwrap()
    }

    #[test]
    fn vila_config_parses_and_keeps_unknown_fields() {
        let config = parse(VILA);
        assert_eq!(config.r, 64);
        assert_eq!(config.lora_alpha, 16.0);
        assert_eq!(config.task_type.as_deref(), Some("CAUSAL_LM"));
        assert_eq!(config.extra["peft_version"], "0.21.2");
        assert!(config.validate(Path::new("x")).is_ok());
        let json = config.to_json();
        assert!(json.contains("\"lora_alpha\": 16,"), "{json}");
        assert!(json.contains("\"peft_version\": \"0.21.2\""), "{json}");
        assert_eq!(parse(&json), config);
        let linear = config.linear_config("any").unwrap();
        assert_eq!(linear.scaling(), 0.25);
    }

    #[test]
    fn unsupported_features_are_refused_by_name() {
        let cases = [
            (r#""use_dora": true"#, "DoRA"),
            (r#""fan_in_fan_out": true"#, "fan_in_fan_out"),
            (r#""bias": "all""#, "bias"),
            (r#""lora_bias": true"#, "lora_bias"),
            (r#""init_lora_weights": "pissa""#, "pissa"),
            (r#""modules_to_save": ["mm_projector"]"#, "modules_to_save"),
            (r#""peft_type": "IA3""#, "IA3"),
            (r#""target_parameters": ["w"]"#, "target_parameters"),
        ];
        for (field, needle) in cases {
            let config = parse(&format!(r#"{{"r": 4, {field}}}"#));
            let e = config
                .validate(Path::new("dir/adapter_config.json"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(needle) && e.contains("dir/adapter_config.json"),
                "{e}"
            );
        }
        let e = parse(r#"{"r": 0}"#)
            .validate(Path::new("c.json"))
            .unwrap_err();
        assert!(matches!(e, LoraError::InvalidConfig(_)), "{e}");
        // Off values of modelled-only-as-extra features are fine.
        let ok = parse(r#"{"lora_bias": false, "target_parameters": null, "use_bdlora": null}"#);
        assert!(ok.validate(Path::new("c.json")).is_ok());
    }

    #[test]
    fn patterns_pick_the_first_match_on_a_dot_boundary() {
        let config = parse(
            r#"{"r": 8, "lora_alpha": 16, "rank_pattern": {"q_proj": 4, "layers.1.q_proj": 2},
                "alpha_pattern": {"layers\\.1\\..*": 3.5}}"#,
        );
        assert_eq!(
            config.rank_and_alpha("a.layers.1.q_proj").unwrap(),
            (4, 3.5)
        );
        assert_eq!(
            config.rank_and_alpha("a.layers.0.q_proj").unwrap(),
            (4, 16.0)
        );
        assert_eq!(
            config.rank_and_alpha("a.layers.0.xq_proj").unwrap(),
            (8, 16.0)
        );
        assert_eq!(config.rank_and_alpha("layers.1.k_proj").unwrap(), (8, 3.5));
        let json = config.to_json();
        assert!(json.contains("\"layers\\\\.1\\\\..*\": 3.5"), "{json}");
        let bad = parse(r#"{"rank_pattern": {"(": 2}}"#);
        assert!(bad.validate(Path::new("c.json")).is_err());
    }

    #[test]
    fn malformed_json_names_the_file() {
        let e = AdapterConfig::from_json("{", Path::new("a/adapter_config.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("a/adapter_config.json"), "{e}");
        let e = AdapterConfig::from_json(r#"{"r": "four"}"#, Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.json"), "{e}");
    }
}
