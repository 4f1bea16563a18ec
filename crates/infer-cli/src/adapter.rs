//! `--adapter DIR`: a PEFT LoRA adapter folder merged into the loaded model.
//!
//! The folder is what PEFT's `save_pretrained` (or the `trainer` crate) writes:
//! `adapter_config.json` + `adapter_model.safetensors` (keys
//! `base_model.model.llm.model.layers.N.self_attn.q_proj.lora_A.weight`, ...), and optionally
//! VILA's non-LoRA trainables (`non_lora_trainables.safetensors`, or VILA's `torch.save`d
//! `non_lora_trainables.bin`, read without executing the pickle) with tuned projector and vision
//! tower weights.
//!
//! Each LLM projection the adapter has factors for is replaced by the merged linear
//! `W + (α/r)·BA` (`scaling = α/√r` with rsLoRA), computed in f32 and stored in the weight's
//! dtype: what PEFT's `merge_and_unload` serves, with no per-token cost. Projector and tower
//! tensors replace the checkpoint's; tower tensors the cut tower does not hold (layers after the
//! selected one, `post_layernorm`, `head`: VILA saves them, unchanged, with a tuned tower) are
//! skipped.
//!
//! Refused with an error naming the file and module: a missing or corrupt file, config features
//! the `lora` crate does not implement (DoRA, `modules_to_save`, bias, ...), factors for modules
//! the model does not have or of the wrong shape (an adapter of another base model), LoRA on the
//! vision tower or the projector, and non-LoRA trainables outside the projector and the tower. A
//! `base_model_name_or_path` that names another model only gives a warning, as in PEFT.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::nn::Linear;
use burn::tensor::TensorData;
use lora::{
    ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LoraError, NON_LORA_TRAINABLES_BIN,
    NON_LORA_TRAINABLES_FILE, PEFT_KEY_PREFIX, PeftAdapter, apply_non_lora_trainables,
    load_non_lora_trainables, lora_a_key,
};
use nvila_model::nvila::{LLM_PATH, TOWER_PATH};
use nvila_model::{NvilaModel, VilaParts, beyond_cut_tower};

/// VILA's module name of the LLM: PEFT paths of LLM modules start with it.
const LLM_PREFIX: &str = LLM_PATH;
/// VILA's module name of the vision tower.
const VISION_PREFIX: &str = "vision_tower.";
/// VILA's module name of the projector.
const PROJECTOR_PREFIX: &str = "mm_projector.";
/// The modules a LoRA adapter may target here.
const SUPPORTED_TARGETS: &str = "llm.model.layers.N.self_attn.{q,k,v,o}_proj, \
                                 llm.model.layers.N.mlp.{gate,up,down}_proj and \
                                 vision_tower.vision_tower.vision_model.encoder.layers.N.\
                                 {self_attn.{q,k,v,out}_proj,mlp.fc1,mlp.fc2}";

/// An adapter folder, read and checked as far as possible without the model (so a bad adapter
/// fails before the slow checkpoint load).
#[derive(Debug)]
pub struct Adapter {
    dir: PathBuf,
    peft: PeftAdapter,
    /// Non-LoRA trainables (projector tensors, keys `base_model.model.mm_projector.…`) and their
    /// file.
    projector: Option<(PathBuf, BTreeMap<String, TensorData>)>,
    /// Things worth telling the user that do not stop the run.
    pub warnings: Vec<String>,
}

impl Adapter {
    /// Reads the adapter folder `dir`: config, factors, non-LoRA trainables.
    ///
    /// # Errors
    ///
    /// Names the folder, file and module for everything listed in the module docs that can be
    /// seen without the model.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        if !dir.is_dir() {
            bail!(
                "--adapter {}: not a directory (expected a PEFT adapter folder with \
                 {ADAPTER_CONFIG_FILE} and {ADAPTER_WEIGHTS_FILE})",
                dir.display()
            );
        }
        let config = dir.join(ADAPTER_CONFIG_FILE);
        if !config.is_file() {
            bail!(
                "--adapter {}: {} is missing (not a PEFT adapter folder)",
                dir.display(),
                config.display()
            );
        }
        let weights = dir.join(ADAPTER_WEIGHTS_FILE);
        if !weights.is_file() {
            let bin = dir.join("adapter_model.bin");
            if bin.is_file() {
                bail!(
                    "--adapter {}: {} is a PyTorch pickle, which is not read (unpickling can \
                     execute code); save the adapter with safe_serialization=True (PEFT's \
                     default) to get {ADAPTER_WEIGHTS_FILE}",
                    dir.display(),
                    bin.display()
                );
            }
            bail!(
                "--adapter {}: {} is missing",
                dir.display(),
                weights.display()
            );
        }
        let mut peft = PeftAdapter::load(dir).with_context(|| {
            format!("--adapter {}: cannot load the LoRA adapter", dir.display())
        })?;
        // Tower paths as VILA (transformers 4.46) names them, also for adapters saved with
        // transformers ≥ 5 (no `vision_model` level).
        peft.modules = std::mem::take(&mut peft.modules)
            .into_iter()
            .map(|(path, factors)| (tower_key(&path), factors))
            .collect();
        check_targets(&peft, dir, &weights)?;
        let projector = read_trainables(dir)?;
        let mut warnings = Vec::new();
        if dir.join(NON_LORA_TRAINABLES_FILE).exists() && dir.join(NON_LORA_TRAINABLES_BIN).exists()
        {
            warnings.push(format!(
                "--adapter {}: both {NON_LORA_TRAINABLES_FILE} and {NON_LORA_TRAINABLES_BIN} \
                 exist; using {NON_LORA_TRAINABLES_FILE}",
                dir.display()
            ));
        }
        Ok(Adapter {
            dir: dir.to_path_buf(),
            peft,
            projector,
            warnings,
        })
    }

    /// Adds a warning when the config's `base_model_name_or_path` names another model than the
    /// folder `model_dir` (PEFT only warns in that case too).
    pub fn check_base_model(&mut self, model_dir: &Path) {
        let Some(base) = self
            .peft
            .config
            .base_model_name_or_path
            .as_deref()
            .filter(|b| !b.trim().is_empty())
        else {
            return;
        };
        let mut names: Vec<String> = Vec::new();
        let canonical = model_dir
            .canonicalize()
            .unwrap_or_else(|_| model_dir.to_path_buf());
        if let Some(name) = canonical.file_name().or_else(|| model_dir.file_name()) {
            names.push(name.to_string_lossy().into_owned());
        }
        if let Some(name) = config_name_or_path(model_dir) {
            names.push(name);
        }
        if names.is_empty() || names.iter().any(|n| same_model(base, n)) {
            return;
        }
        self.warnings.push(format!(
            "--adapter {}: {ADAPTER_CONFIG_FILE} says base_model_name_or_path = {base:?}, but \
             --model is {}; the adapter may belong to another model (its shapes are still \
             checked)",
            self.dir.display(),
            model_dir.display()
        ));
    }

    /// Merges the adapter into `model`'s LLM projections and loads the projector tensors.
    ///
    /// # Errors
    ///
    /// Factors for modules the model does not have or that do not fit their layer, and
    /// projector tensors the projector does not have or of the wrong shape; each names the file
    /// and the tensor.
    pub fn apply(self, model: NvilaModel) -> anyhow::Result<NvilaModel> {
        let Adapter {
            dir,
            mut peft,
            projector,
            ..
        } = self;
        let context = || format!("--adapter {}", dir.display());
        // Factors for tower layers after the cut (VILA's `lora_vt` adapts every tower layer)
        // never change the outputs.
        let kept = model.vision_tower.n_layers_run();
        peft.modules.retain(|path, _| !beyond_cut_tower(path, kept));
        let mut model = model
            .map_projections(|path, linear: Linear| -> Result<Linear, LoraError> {
                if !peft.modules.contains_key(path) {
                    return Ok(linear);
                }
                Ok(peft.wrap(path, linear)?.into_merged_linear())
            })
            .with_context(|| {
                format!(
                    "{}: the adapter does not fit this model (an adapter for another base model?)",
                    context()
                )
            })?;
        peft.finish().with_context(|| {
            format!(
                "{}: the adapter does not fit this model; LoRA is applied to {SUPPORTED_TARGETS}",
                context()
            )
        })?;
        if let Some((source, mut tensors)) = projector {
            let kept = model.vision_tower.encoder.layers.len();
            tensors.retain(|key, _| !unused_tower_key(key, kept));
            let parts = VilaParts::of(&model);
            let parts = apply_non_lora_trainables(parts, &tensors, &source).with_context(|| {
                format!(
                    "{}: the tuned weights do not fit this model's vision tower and projector",
                    context()
                )
            })?;
            parts.put_into(&mut model);
        }
        Ok(model)
    }
}

/// Refuses factors outside the LLM, naming them: the vision tower and the projector are not
/// supported, other roots do not exist in NVILA. (Paths inside the LLM are checked against the
/// model once it is loaded.)
fn check_targets(peft: &PeftAdapter, dir: &Path, weights: &Path) -> anyhow::Result<()> {
    let keys_under = |prefix: &str| -> Vec<String> {
        peft.modules
            .keys()
            .filter(|p| p.starts_with(prefix))
            .map(|p| lora_a_key(p))
            .collect()
    };
    let projector = keys_under(PROJECTOR_PREFIX);
    if !projector.is_empty() {
        bail!(
            "--adapter {}: {}: LoRA on the projector is not supported (only on \
             {SUPPORTED_TARGETS}); factors: {}",
            dir.display(),
            weights.display(),
            projector.join(", ")
        );
    }
    let lm_head = keys_under("llm.lm_head");
    if !lm_head.is_empty() {
        bail!(
            "--adapter {}: {}: LoRA on lm_head is not supported (only {SUPPORTED_TARGETS}); \
             factors: {}",
            dir.display(),
            weights.display(),
            lm_head.join(", ")
        );
    }
    let elsewhere: Vec<String> = peft
        .modules
        .keys()
        .filter(|p| !p.starts_with(LLM_PREFIX) && !p.starts_with(TOWER_PATH))
        .map(|p| lora_a_key(p))
        .collect();
    if !elsewhere.is_empty() {
        bail!(
            "--adapter {}: {}: factors for modules NVILA does not have (VILA's module paths \
             start with `llm.`, `vision_tower.` or `mm_projector.`; an adapter for a bare LLM?): \
             {}",
            dir.display(),
            weights.display(),
            elsewhere.join(", ")
        );
    }
    Ok(())
}

/// Whether `key` (PEFT form) is a tower tensor the tower cut after `kept` layers does not hold.
fn unused_tower_key(key: &str, kept: usize) -> bool {
    beyond_cut_tower(module_name(key), kept)
}

/// VILA's key for a tower tensor also when it was saved with transformers ≥ 5, whose
/// `SiglipVisionModel` has no `vision_model` level (`vision_tower.vision_tower.encoder.…`).
fn tower_key(name: &str) -> String {
    match name.strip_prefix("vision_tower.vision_tower.") {
        Some(rest) if !rest.starts_with("vision_model.") => {
            format!("{TOWER_PATH}{rest}")
        }
        _ => name.to_string(),
    }
}

/// Reads the non-LoRA trainables beside the adapter, if any, keeping projector and tower
/// tensors (keys `mm_projector.…`, `vision_tower.…`); anything else is refused by name.
fn read_trainables(dir: &Path) -> anyhow::Result<Option<(PathBuf, BTreeMap<String, TensorData>)>> {
    let safetensors = dir.join(NON_LORA_TRAINABLES_FILE);
    let bin = dir.join(NON_LORA_TRAINABLES_BIN);
    let path = if safetensors.exists() {
        safetensors
    } else if bin.exists() {
        bin
    } else {
        return Ok(None);
    };
    let tensors = load_non_lora_trainables(&path).with_context(|| {
        format!(
            "--adapter {}: cannot read the non-LoRA trainables",
            dir.display()
        )
    })?;
    let mut tuned = BTreeMap::new();
    let mut llm = Vec::new();
    let mut other = Vec::new();
    for (key, data) in tensors {
        let name = module_name(&key);
        if name.starts_with(PROJECTOR_PREFIX) || name.starts_with(VISION_PREFIX) {
            // PEFT's form of the key (as written by PEFT, VILA and the trainer): errors name it.
            tuned.insert(format!("{PEFT_KEY_PREFIX}{}", tower_key(name)), data);
        } else if name.starts_with(LLM_PREFIX) {
            llm.push(key);
        } else {
            other.push(key);
        }
    }
    let refuse = |keys: &[String], what: &str| -> anyhow::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        bail!(
            "--adapter {}: {}: {what} (only projector and vision tower weights, `mm_projector.…` \
             and `vision_tower.…`, are applied): {}",
            dir.display(),
            path.display(),
            keys.join(", ")
        )
    };
    refuse(
        &llm,
        "full LLM weights (tune_language_model) are not supported beside a LoRA adapter",
    )?;
    refuse(&other, "tensors for modules NVILA does not have")?;
    Ok((!tuned.is_empty()).then_some((path, tuned)))
}

/// A trainables key without PEFT's wrapper prefix (`base_model.model.`), or VILA's
/// `base_model.` / `model.` forms that its loader strips too (`llava/model/builder.py`).
fn module_name(key: &str) -> &str {
    let key = key
        .strip_prefix(PEFT_KEY_PREFIX)
        .or_else(|| key.strip_prefix("base_model."))
        .unwrap_or(key);
    match key.strip_prefix("model.") {
        Some(rest)
            if [LLM_PREFIX, VISION_PREFIX, PROJECTOR_PREFIX]
                .iter()
                .any(|p| rest.starts_with(p)) =>
        {
            rest
        }
        _ => key,
    }
}

/// `_name_or_path` of the checkpoint's top-level `config.json`, if readable.
fn config_name_or_path(model_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(model_dir.join("config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value
        .get("_name_or_path")?
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
}

/// The model name a path or hub id ends with (`Org/NVILA-Lite-8B`, `/models/NVILA-Lite-8B/`,
/// `…/NVILA-Lite-8B/llm` → `nvila-lite-8b`), lower-cased.
fn model_name(name_or_path: &str) -> String {
    let parts: Vec<&str> = name_or_path
        .split(['/', '\\'])
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let name = match parts.as_slice() {
        [.., parent, "llm"] => parent,
        [.., last] => last,
        [] => "",
    };
    name.to_lowercase()
}

/// Whether two names or paths plausibly name the same model: equal final names, or one inside
/// the other (`nvila-lite-8b` and `nvila-lite-8b-hf`). Only a clear difference warns.
fn same_model(a: &str, b: &str) -> bool {
    let (a, b) = (model_name(a), model_name(b));
    !a.is_empty() && !b.is_empty() && (a == b || a.contains(&b) || b.contains(&a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_compare_by_final_component() {
        assert!(same_model(
            "Efficient-Large-Model/NVILA-Lite-8B",
            "/data/nvila-lite-8b/"
        ));
        assert!(same_model("/ckpt/NVILA-Lite-8B/llm", "NVILA-Lite-8B"));
        assert!(same_model("NVILA-Lite-8B", "NVILA-Lite-8B-hf"));
        assert!(!same_model("Qwen/Qwen2-7B", "NVILA-Lite-8B"));
        assert!(!same_model("", "NVILA-Lite-8B"));
    }

    #[test]
    fn trainables_keys_lose_wrapper_prefixes() {
        assert_eq!(
            module_name("base_model.model.mm_projector.layers.1.weight"),
            "mm_projector.layers.1.weight"
        );
        assert_eq!(
            module_name("base_model.model.model.mm_projector.layers.1.weight"),
            "mm_projector.layers.1.weight"
        );
        assert_eq!(
            module_name("mm_projector.layers.1.bias"),
            "mm_projector.layers.1.bias"
        );
        assert_eq!(module_name("model.norm.weight"), "model.norm.weight");
    }
}
