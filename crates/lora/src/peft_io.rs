//! A PEFT adapter folder both ways: `adapter_config.json` + `adapter_model.safetensors` with keys
//! `base_model.model.<module path>.lora_{A,B}.weight` (`peft/utils/save_and_load.py`,
//! `peft/utils/constants.py`), checked against the config and, when attached, the model.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::TensorData;

use crate::config::AdapterConfig;
use crate::error::LoraError;
use crate::factors::{Factor, LoraFactors, lora_a_key, lora_b_key, parse_lora_key, transpose_2d};
use crate::linear::{LoraLinear, LoraLinearConfig};
use crate::tensor_file::{read_tensors, write_atomic, write_tensors};
use crate::walk::{list_params, read_params, replace_params};

/// PEFT's `CONFIG_NAME`.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
/// PEFT's `SAFETENSORS_WEIGHTS_NAME`.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";

const A_SUFFIX: &str = ".lora_A.weight";
const B_SUFFIX: &str = ".lora_B.weight";

/// A LoRA adapter: its config and, per module path, its factors in PEFT's layout.
#[derive(Debug, Clone)]
pub struct PeftAdapter {
    /// `adapter_config.json`.
    pub config: AdapterConfig,
    /// Module path (no `base_model.model.` prefix) → factors.
    pub modules: BTreeMap<String, LoraFactors>,
    /// Where it came from, for error messages (`<in memory>` when built in memory).
    pub source: PathBuf,
}

impl PeftAdapter {
    /// An adapter from parts, after checking the config and every module's rank against it.
    pub fn new(
        config: AdapterConfig,
        modules: BTreeMap<String, LoraFactors>,
    ) -> Result<Self, LoraError> {
        Self::checked(config, modules, PathBuf::from("<in memory>"))
    }

    fn checked(
        config: AdapterConfig,
        modules: BTreeMap<String, LoraFactors>,
        source: PathBuf,
    ) -> Result<Self, LoraError> {
        config.validate(&source)?;
        for (path, factors) in &modules {
            let (r, _) = config.rank_and_alpha(path)?;
            factors.check(r, None, &source, path)?;
        }
        Ok(PeftAdapter {
            config,
            modules,
            source,
        })
    }

    /// Reads the adapter in `dir` (as written by PEFT's `save_pretrained` or [`save`](Self::save)).
    ///
    /// # Errors
    ///
    /// Typed errors naming the file: unreadable or malformed files, unsupported config features
    /// (DoRA, `fan_in_fan_out`, bias, ...), keys that are not LoRA factors, a module with only
    /// one factor, a rank that disagrees with `r` / `rank_pattern`, non-float dtypes.
    pub fn load(dir: &Path) -> Result<Self, LoraError> {
        let config = AdapterConfig::load(&dir.join(ADAPTER_CONFIG_FILE))?;
        let weights = dir.join(ADAPTER_WEIGHTS_FILE);
        let tensors = read_tensors(&weights)?;
        let mut a = BTreeMap::new();
        let mut b = BTreeMap::new();
        let mut unexpected = Vec::new();
        for (key, data) in tensors {
            match parse_lora_key(&key) {
                Some((path, Factor::A)) => {
                    a.insert(path.to_string(), data);
                }
                Some((path, Factor::B)) => {
                    b.insert(path.to_string(), data);
                }
                None => unexpected.push(key),
            }
        }
        if !unexpected.is_empty() {
            return Err(LoraError::UnexpectedKeys {
                path: weights,
                keys: unexpected,
            });
        }
        let paths: BTreeSet<String> = a.keys().chain(b.keys()).cloned().collect();
        let mut missing = Vec::new();
        let mut modules = BTreeMap::new();
        for path in paths {
            match (a.remove(&path), b.remove(&path)) {
                (Some(lora_a), Some(lora_b)) => {
                    modules.insert(path, LoraFactors { lora_a, lora_b });
                }
                (None, _) => missing.push(lora_a_key(&path)),
                (_, None) => missing.push(lora_b_key(&path)),
            }
        }
        if !missing.is_empty() {
            return Err(LoraError::MissingKeys {
                path: weights,
                keys: missing,
            });
        }
        let adapter = Self::checked(config, modules, weights)?;
        tracing::debug!(
            dir = %dir.display(),
            modules = adapter.modules.len(),
            "loaded PEFT LoRA adapter"
        );
        Ok(adapter)
    }

    /// Writes `adapter_model.safetensors` and `adapter_config.json` into `dir` (created if
    /// needed), each through a temporary file. As PEFT, the saved config says
    /// `inference_mode: true`.
    pub fn save(&self, dir: &Path) -> Result<(), LoraError> {
        self.config.validate(Path::new(ADAPTER_CONFIG_FILE))?;
        std::fs::create_dir_all(dir).map_err(LoraError::io(dir))?;
        let mut tensors: BTreeMap<String, TensorData> = BTreeMap::new();
        for (path, factors) in &self.modules {
            tensors.insert(lora_a_key(path), factors.lora_a.clone());
            tensors.insert(lora_b_key(path), factors.lora_b.clone());
        }
        write_tensors(&dir.join(ADAPTER_WEIGHTS_FILE), &tensors)?;
        let mut config = self.config.clone();
        config.inference_mode = true;
        let config_path = dir.join(ADAPTER_CONFIG_FILE);
        write_atomic(&config_path, config.to_json().as_bytes())?;
        tracing::debug!(dir = %dir.display(), modules = self.modules.len(), "saved PEFT LoRA adapter");
        Ok(())
    }

    /// The adapter of every [`LoraLinear`] inside `module` (found by the parameter paths
    /// `<path>.lora_A.weight` / `<path>.lora_B.weight`), under `config`.
    pub fn from_module<M: Module>(config: AdapterConfig, module: &M) -> Result<Self, LoraError> {
        let paths: Vec<String> = list_params(module)
            .into_iter()
            .filter(|p| p.path.ends_with(A_SUFFIX) || p.path.ends_with(B_SUFFIX))
            .map(|p| p.path)
            .collect();
        let mut values = read_params(module, paths)?;
        let mut modules = BTreeMap::new();
        let a_paths: Vec<String> = values
            .keys()
            .filter_map(|k| k.strip_suffix(A_SUFFIX).map(str::to_string))
            .collect();
        for path in a_paths {
            let a = values.remove(&format!("{path}{A_SUFFIX}"));
            let b = values.remove(&format!("{path}{B_SUFFIX}"));
            if let (Some(a), Some(b)) = (a, b) {
                let factors = LoraFactors {
                    lora_a: transpose_2d(&a),
                    lora_b: transpose_2d(&b),
                };
                modules.insert(path, factors);
            }
        }
        Self::new(config, modules)
    }

    /// The [`LoraLinearConfig`] for the module at `module_path` (rank and alpha after the
    /// config's patterns).
    pub fn linear_config(&self, module_path: &str) -> Result<LoraLinearConfig, LoraError> {
        self.config.linear_config(module_path)
    }

    /// Wraps the base layer found at `module_path` with this adapter's factors for it, and takes
    /// them out of the adapter (see [`finish`](Self::finish)).
    ///
    /// # Errors
    ///
    /// [`LoraError::MissingKeys`] when the adapter has no factors for `module_path`;
    /// [`LoraError::BadTensor`] when they do not fit `base`.
    pub fn wrap(&mut self, module_path: &str, base: Linear) -> Result<LoraLinear, LoraError> {
        let config = self.linear_config(module_path)?;
        let factors = self
            .modules
            .remove(module_path)
            .ok_or_else(|| LoraError::MissingKeys {
                path: self.source.clone(),
                keys: vec![lora_a_key(module_path), lora_b_key(module_path)],
            })?;
        config.init_from(base, factors, &self.source, module_path)
    }

    /// Succeeds when [`wrap`](Self::wrap) took every module's factors; otherwise names the
    /// modules the model did not have.
    pub fn finish(self) -> Result<(), LoraError> {
        if self.modules.is_empty() {
            return Ok(());
        }
        Err(LoraError::UnknownModules {
            path: self.source,
            keys: self.modules.keys().map(|p| lora_a_key(p)).collect(),
        })
    }

    /// Loads the factors into the [`LoraLinear`]s already inside `module` (built with
    /// [`linear_config`](Self::linear_config) for their scaling), by path.
    ///
    /// # Errors
    ///
    /// [`LoraError::UnknownModules`] for adapter modules the model lacks,
    /// [`LoraError::MissingKeys`] for LoRA layers of the model the adapter lacks, and
    /// [`LoraError::BadTensor`] for factors that do not fit their layer.
    pub fn apply_to<M: Module>(&self, module: M) -> Result<M, LoraError> {
        let params: BTreeMap<String, Vec<usize>> = list_params(&module)
            .into_iter()
            .map(|p| (p.path, p.dims))
            .collect();
        let model_modules: BTreeSet<&str> = params
            .keys()
            .filter_map(|k| k.strip_suffix(A_SUFFIX))
            .collect();
        let unknown: Vec<String> = self
            .modules
            .keys()
            .filter(|p| !model_modules.contains(p.as_str()))
            .map(|p| lora_a_key(p))
            .collect();
        if !unknown.is_empty() {
            return Err(LoraError::UnknownModules {
                path: self.source.clone(),
                keys: unknown,
            });
        }
        let missing: Vec<String> = model_modules
            .iter()
            .filter(|p| !self.modules.contains_key(**p))
            .flat_map(|p| [lora_a_key(p), lora_b_key(p)])
            .collect();
        if !missing.is_empty() {
            return Err(LoraError::MissingKeys {
                path: self.source.clone(),
                keys: missing,
            });
        }
        let mut values = BTreeMap::new();
        for (path, factors) in &self.modules {
            // burn layouts: lora_A.weight [in, r], lora_B.weight [r, out].
            let a_dims = params.get(&format!("{path}{A_SUFFIX}"));
            let b_dims = params.get(&format!("{path}{B_SUFFIX}"));
            let (Some(&[d_in, r]), Some(&[_, d_out])) =
                (a_dims.map(Vec::as_slice), b_dims.map(Vec::as_slice))
            else {
                return Err(LoraError::BadTensor {
                    path: self.source.clone(),
                    key: lora_a_key(path),
                    message: "the model's layer at this path is not a LoraLinear".into(),
                });
            };
            factors.check(r, Some([d_in, d_out]), &self.source, path)?;
            values.insert(format!("{path}{A_SUFFIX}"), transpose_2d(&factors.lora_a));
            values.insert(format!("{path}{B_SUFFIX}"), transpose_2d(&factors.lora_b));
        }
        Ok(replace_params(module, values))
    }
}
