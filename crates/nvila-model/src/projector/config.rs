//! `mm_projector/config.json`: VILA's `MultimodalProjectorConfig`
//! (`llava/model/multimodal_projector/base_projector.py`, `model_type: v2l_projector`), of which
//! the projector type is the only architecture field; the widths come from the vision tower and
//! the LLM.

use std::path::Path;

use serde::Deserialize;

use crate::error::ModelError;

/// The projector types this port implements, by their `mm_projector_type` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectorType {
    /// `mlp_downsample_2x2_fix`: 2x2 token merge, LN(4C), Linear(4C→H), GELU, Linear(H→H).
    /// NVILA (non-Lite).
    MlpDownsample2x2Fix,
    /// `mlp_downsample_3x3_fix`: 3x3 token merge, LN(9C), Linear(9C→3C), GELU, LN(3C),
    /// Linear(3C→H), GELU, Linear(H→H). NVILA-Lite.
    MlpDownsample3x3Fix,
}

impl ProjectorType {
    /// Every supported type.
    pub const ALL: [ProjectorType; 2] = [
        ProjectorType::MlpDownsample2x2Fix,
        ProjectorType::MlpDownsample3x3Fix,
    ];

    /// The `mm_projector_type` string.
    pub fn name(self) -> &'static str {
        match self {
            ProjectorType::MlpDownsample2x2Fix => "mlp_downsample_2x2_fix",
            ProjectorType::MlpDownsample3x3Fix => "mlp_downsample_3x3_fix",
        }
    }

    /// The type named `name`, if supported.
    pub fn from_name(name: &str) -> Option<ProjectorType> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Side of the square token block merged into one output token (VILA's
    /// `downsample_rate`).
    pub fn downsample_rate(self) -> usize {
        match self {
            ProjectorType::MlpDownsample2x2Fix => 2,
            ProjectorType::MlpDownsample3x3Fix => 3,
        }
    }
}

/// `mm_projector/config.json` as written. Other keys (`architectures`, `model_type`,
/// `torch_dtype`, ...) are ignored.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ProjectorConfig {
    /// VILA's projector type string (NVILA-Lite: `mlp_downsample_3x3_fix`).
    pub mm_projector_type: String,
}

impl ProjectorConfig {
    /// Reads `path` (an `mm_projector/config.json`) and checks that its type is supported.
    pub fn from_file(path: &Path) -> Result<ProjectorConfig, ModelError> {
        let text = crate::error::read_text(path, "projector config.json")?;
        Self::from_json(&text, path)
    }

    /// Parses the text of a `config.json` and checks its type; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<ProjectorConfig, ModelError> {
        let config: ProjectorConfig = serde_json::from_str(text).map_err(|e| ModelError::Json {
            path: path.to_path_buf(),
            message: format!("not a VILA projector config: {e}"),
        })?;
        config.projector_type(path)?;
        Ok(config)
    }

    /// The supported type this config names, or an error naming `path` and the type.
    pub fn projector_type(&self, path: &Path) -> Result<ProjectorType, ModelError> {
        ProjectorType::from_name(&self.mm_projector_type).ok_or_else(|| ModelError::Config {
            path: path.to_path_buf(),
            message: format!(
                "mm_projector_type {:?} is not supported (supported: {})",
                self.mm_projector_type,
                ProjectorType::ALL.map(ProjectorType::name).join(", ")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vila_config_and_refuses_other_types() {
        let path = Path::new("mm_projector/config.json");
        let config = ProjectorConfig::from_json(
            r#"{"architectures": ["MultimodalProjector"], "mm_projector_type":
                "mlp_downsample_3x3_fix", "model_type": "v2l_projector"}"#,
            path,
        )
        .unwrap();
        assert_eq!(
            config.projector_type(path).unwrap(),
            ProjectorType::MlpDownsample3x3Fix
        );

        let err =
            ProjectorConfig::from_json(r#"{"mm_projector_type": "mlp2x_gelu"}"#, path).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ModelError::Config { .. }), "{message}");
        assert!(message.contains("mm_projector/config.json"), "{message}");
        assert!(message.contains("\"mlp2x_gelu\""), "{message}");

        let err =
            ProjectorConfig::from_json(r#"{"model_type": "v2l_projector"}"#, path).unwrap_err();
        assert!(err.to_string().contains("mm_projector_type"), "{err}");
    }
}
