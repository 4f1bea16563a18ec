//! The NVILA checkpoint folder: the top-level `config.json` (model_type `llava_llama`) and the
//! three component subfolders `llm/`, `vision_tower/` and `mm_projector/`.
//!
//! VILA keeps each component's own config in its subfolder and resolves `llm_cfg`,
//! `vision_tower_cfg` and `mm_projector_cfg` to `<root>/llm`, `<root>/vision_tower`,
//! `<root>/mm_projector` (`llava/model/utils/utils.py::get_model_config`), so the subfolder
//! configs are authoritative for architecture; the top level carries the multimodal settings
//! read here.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ModelError;

/// The multimodal settings of the top-level `config.json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct NvilaConfig {
    /// `llava_llama` for every VILA/NVILA checkpoint.
    pub model_type: String,
    /// `dynamic` (NVILA-Lite), `resize`, `pad`, `dynamic_s2` (NVILA, not supported here), ...
    /// Absent in a config means VILA's `DataArguments` default, `resize` (`llava/train/args.py`).
    #[serde(default = "default_aspect_ratio")]
    pub image_aspect_ratio: String,
    /// Fewest tiles of the `dynamic` tiler (`min_tiles`, default 1).
    #[serde(default = "default_min_tiles")]
    pub min_tiles: usize,
    /// Most tiles of the `dynamic` tiler (`max_tiles`, default 12).
    #[serde(default = "default_max_tiles")]
    pub max_tiles: usize,
    /// Which SigLIP hidden state feeds the projector: NVILA uses −2 (layer 26 of 27).
    #[serde(default = "default_select_layer")]
    pub mm_vision_select_layer: isize,
    /// `cls_patch` keeps all tokens (NVILA); `patch` would drop token 0.
    #[serde(default = "default_select_feature")]
    pub mm_vision_select_feature: String,
    /// e.g. `torch.bfloat16`.
    #[serde(default)]
    pub model_dtype: Option<String>,
}

fn default_aspect_ratio() -> String {
    "resize".into()
}
fn default_min_tiles() -> usize {
    1
}
fn default_max_tiles() -> usize {
    12
}
fn default_select_layer() -> isize {
    -2
}
fn default_select_feature() -> String {
    "cls_patch".into()
}

/// Image handling this port implements (`llava/mm_utils.py::process_image`).
pub const SUPPORTED_ASPECT_RATIOS: [&str; 2] = ["dynamic", "resize"];

/// A checkpoint folder whose layout has been checked.
#[derive(Clone, Debug)]
pub struct CheckpointLayout {
    /// The folder holding the top-level `config.json`.
    pub root: PathBuf,
    /// Its multimodal settings.
    pub config: NvilaConfig,
    /// `llm/`: Qwen2 weights, `config.json`, tokenizer files.
    pub llm_dir: PathBuf,
    /// `vision_tower/`: SigLIP weights and `config.json`.
    pub vision_tower_dir: PathBuf,
    /// `mm_projector/`: projector weights and `config.json`.
    pub mm_projector_dir: PathBuf,
}

fn require_file(path: &Path, what: &str) -> Result<(), ModelError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(ModelError::Missing {
            path: path.to_path_buf(),
            what: what.to_string(),
        })
    }
}

fn require_weights(dir: &Path) -> Result<(), ModelError> {
    if dir.join(crate::weights::SINGLE_FILE).is_file()
        || dir.join(crate::weights::INDEX_FILE).is_file()
    {
        Ok(())
    } else {
        Err(ModelError::Missing {
            path: dir.join(crate::weights::SINGLE_FILE),
            what: format!(
                "weights: neither {} nor {}",
                crate::weights::SINGLE_FILE,
                crate::weights::INDEX_FILE
            ),
        })
    }
}

impl NvilaConfig {
    /// Parses and checks a top-level `config.json`.
    pub fn load(path: &Path) -> Result<NvilaConfig, ModelError> {
        let text = crate::error::read_text(path, "top-level config.json")?;
        let config: NvilaConfig = serde_json::from_str(&text).map_err(|e| ModelError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            message,
        };
        if self.model_type != "llava_llama" {
            return Err(bad(format!(
                "model_type {:?} is not an NVILA checkpoint (expected \"llava_llama\")",
                self.model_type
            )));
        }
        if !SUPPORTED_ASPECT_RATIOS.contains(&self.image_aspect_ratio.as_str()) {
            return Err(bad(format!(
                "image_aspect_ratio {:?} is not supported (supported: {}); NVILA-Lite uses \"dynamic\"",
                self.image_aspect_ratio,
                SUPPORTED_ASPECT_RATIOS.join(", ")
            )));
        }
        // "patch" drops SigLIP's token 0, leaving 1023 tokens that the 3x3 projector cannot
        // reshape (nvila.md §1.3); VILA crashes on it deep inside the projector.
        if self.mm_vision_select_feature != "cls_patch" {
            return Err(bad(format!(
                "mm_vision_select_feature {:?} is not supported (NVILA uses \"cls_patch\")",
                self.mm_vision_select_feature
            )));
        }
        if self.min_tiles == 0 || self.min_tiles > self.max_tiles {
            return Err(bad(format!(
                "min_tiles {} / max_tiles {} are inconsistent",
                self.min_tiles, self.max_tiles
            )));
        }
        Ok(())
    }
}

impl CheckpointLayout {
    /// Checks the folder layout of an NVILA checkpoint. Like `llava.load`, a `model/`
    /// subfolder is used when present (VILA training writes `runs/<name>/model/`).
    pub fn open(root: &Path) -> Result<CheckpointLayout, ModelError> {
        if !root.is_dir() {
            return Err(ModelError::Missing {
                path: root.to_path_buf(),
                what: "checkpoint folder".into(),
            });
        }
        let root = if root.join("model").join("config.json").is_file() {
            root.join("model")
        } else {
            root.to_path_buf()
        };
        let config_path = root.join("config.json");
        require_file(
            &config_path,
            "top-level config.json (model_type llava_llama)",
        )?;
        let config = NvilaConfig::load(&config_path)?;
        let llm_dir = root.join("llm");
        let vision_tower_dir = root.join("vision_tower");
        let mm_projector_dir = root.join("mm_projector");
        for (dir, what) in [
            (&llm_dir, "llm/ subfolder (Qwen2 weights and tokenizer)"),
            (
                &vision_tower_dir,
                "vision_tower/ subfolder (SigLIP weights)",
            ),
            (
                &mm_projector_dir,
                "mm_projector/ subfolder (projector weights)",
            ),
        ] {
            if !dir.is_dir() {
                return Err(ModelError::Missing {
                    path: dir.clone(),
                    what: what.to_string(),
                });
            }
            require_file(&dir.join("config.json"), "component config.json")?;
            require_weights(dir)?;
        }
        require_file(&llm_dir.join("tokenizer.json"), "tokenizer")?;
        Ok(CheckpointLayout {
            root,
            config,
            llm_dir,
            vision_tower_dir,
            mm_projector_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path, json: &str) -> PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    #[test]
    fn defaults_follow_vila() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_config(dir.path(), r#"{"model_type": "llava_llama"}"#);
        let c = NvilaConfig::load(&p).unwrap();
        assert_eq!(c.image_aspect_ratio, "resize");
        assert_eq!((c.min_tiles, c.max_tiles), (1, 12));
        assert_eq!(c.mm_vision_select_layer, -2);
    }

    #[test]
    fn unsupported_settings_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for (json, needle) in [
            (r#"{"model_type": "llama"}"#, "model_type"),
            (
                r#"{"model_type": "llava_llama", "image_aspect_ratio": "dynamic_s2"}"#,
                "dynamic_s2",
            ),
            (
                r#"{"model_type": "llava_llama", "mm_vision_select_feature": "patch"}"#,
                "mm_vision_select_feature",
            ),
            (
                r#"{"model_type": "llava_llama", "max_tiles": 0}"#,
                "max_tiles",
            ),
            (r#"{"model_type": "#, "config.json"),
        ] {
            let p = write_config(dir.path(), json);
            let e = NvilaConfig::load(&p).unwrap_err().to_string();
            assert!(
                e.contains("config.json") && e.contains(needle),
                "{json}: {e}"
            );
        }
    }

    #[test]
    fn missing_subfolder_or_weights_is_reported_by_path() {
        let dir = tempfile::tempdir().unwrap();
        write_config(
            dir.path(),
            r#"{"model_type": "llava_llama", "image_aspect_ratio": "dynamic"}"#,
        );
        let e = CheckpointLayout::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("llm") && e.contains("missing"), "{e}");

        for sub in ["llm", "vision_tower", "mm_projector"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            std::fs::write(dir.path().join(sub).join("config.json"), "{}").unwrap();
        }
        let e = CheckpointLayout::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("model.safetensors"), "{e}");
    }
}
