//! The projector's errors: each bad config, checkpoint or input gives a typed error that names
//! the file (or the input) and the problem. Bad checkpoints are edited copies of
//! `fixtures/golden/tiny-nvila/mm_projector/` in a temporary folder.

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Tensor};
use nvila_model::ModelError;
use nvila_model::projector::Projector;

const MM_HIDDEN: usize = 32;
const LLM_HIDDEN: usize = 64;

fn projector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/tiny-nvila/mm_projector")
}

/// Copies the tiny 3x3 projector into a temporary folder with `config_json` as its config,
/// without `drop_key` and with `extra_key` (f32 zeros of shape `[2]`).
fn edited_copy(
    config_json: &str,
    drop_key: Option<&str>,
    extra_key: Option<&str>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config_json).unwrap();
    common::copy_safetensors_edited(
        &projector_dir().join("model.safetensors"),
        &dir.path().join("model.safetensors"),
        drop_key,
        extra_key,
    );
    dir
}

const CONFIG_3X3: &str =
    r#"{"mm_projector_type": "mlp_downsample_3x3_fix", "model_type": "v2l_projector"}"#;

fn load(dir: &Path, mm_hidden: usize) -> Result<Projector, ModelError> {
    Projector::from_pretrained(dir, &Device::flex(), None, mm_hidden, LLM_HIDDEN)
}

#[test]
fn unknown_projector_type_names_file_and_type() {
    let dir = edited_copy(
        r#"{"mm_projector_type": "mlp_downsample_3x3_s2"}"#,
        None,
        None,
    );
    let err = load(dir.path(), MM_HIDDEN).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ModelError::Config { .. }), "{message}");
    assert!(
        message.contains(&dir.path().join("config.json").display().to_string()),
        "{message}"
    );
    assert!(message.contains("\"mlp_downsample_3x3_s2\""), "{message}");
    assert!(message.contains("mlp_downsample_3x3_fix"), "{message}");
}

#[test]
fn missing_config_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path(), MM_HIDDEN).unwrap_err();
    assert!(matches!(err, ModelError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn missing_key_is_named() {
    let dir = edited_copy(CONFIG_3X3, Some("layers.4.bias"), None);
    let err = load(dir.path(), MM_HIDDEN).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingKeys { keys, .. } if keys == &["layers.4.bias".to_string()]),
        "{err}"
    );
}

#[test]
fn unexpected_key_is_reported_as_unused() {
    let dir = edited_copy(CONFIG_3X3, None, Some("layers.8.bias"));
    let err = load(dir.path(), MM_HIDDEN).unwrap_err();
    assert!(
        matches!(&err, ModelError::UnusedKeys { keys, .. } if keys == &["layers.8.bias".to_string()]),
        "{err}"
    );
}

#[test]
fn checkpoint_of_another_width_is_refused_with_shapes() {
    // A projector for a 16-wide tower: LN(9*16) does not match the checkpoint's LN(288).
    let err = load(&projector_dir(), 16).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, ModelError::BadTensor { key, .. } if key == "layers.1.weight"),
        "{message}"
    );
    assert!(
        message.contains("[288]") && message.contains("[144]"),
        "{message}"
    );
}

#[test]
fn features_of_wrong_shape_are_refused() {
    let device = Device::flex();
    let projector = load(&projector_dir(), MM_HIDDEN).unwrap();
    // Wrong width, a token count that is no square, no tiles.
    for shape in [[2, 16, 31], [2, 15, 32], [0, 16, 32]] {
        let features = Tensor::<3>::zeros(shape, (&device, DType::F32));
        let err = projector.forward(features).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ModelError::Input(_)), "{message}");
        assert!(message.contains(&format!("{shape:?}")), "{message}");
    }
}
