//! The SigLIP vision tower's errors: each bad checkpoint, config or input gives a typed error
//! that names the file (or the input) and the problem. Bad checkpoints are edited copies of
//! `fixtures/golden/tiny-nvila/vision_tower/` in a temporary folder.

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Tensor};
use nvila_model::ModelError;
use nvila_model::vision::SiglipVisionTower;
use safetensors::tensor::TensorView;
use safetensors::{SafeTensors, serialize_to_file};

fn tower_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/tiny-nvila/vision_tower")
}

/// Copies the tiny tower into a temporary folder: `config.json` with `config_edit` applied,
/// `model.safetensors` without `drop_key` and with `extra_key` (f32 zeros of shape `[2]`).
fn edited_copy(
    config_edit: impl Fn(&mut serde_json::Value),
    drop_key: Option<&str>,
    extra_key: Option<&str>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tower_dir().join("config.json")).unwrap())
            .unwrap();
    config_edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();

    common::copy_safetensors_edited(
        &tower_dir().join("model.safetensors"),
        &dir.path().join("model.safetensors"),
        drop_key,
        extra_key,
    );
    dir
}

fn load(dir: &Path, select_layer: isize) -> Result<SiglipVisionTower, ModelError> {
    SiglipVisionTower::from_pretrained(dir, &Device::flex(), None, select_layer)
}

#[test]
fn missing_key_is_named() {
    let key = "vision_model.encoder.layers.1.mlp.fc2.bias";
    let dir = edited_copy(|_| {}, Some(key), None);
    let err = load(dir.path(), -2).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingKeys { keys, .. } if keys == &[key.to_string()]),
        "{err}"
    );
    assert!(err.to_string().contains(key), "{err}");
}

#[test]
fn a_missing_key_of_an_unused_layer_is_not_needed() {
    // Layer 2 (the last) is never built for select layer -2.
    let dir = edited_copy(
        |_| {},
        Some("vision_model.encoder.layers.2.mlp.fc2.bias"),
        None,
    );
    load(dir.path(), -2).unwrap();
}

#[test]
fn unexpected_key_is_reported_as_unused() {
    let key = "vision_model.encoder.layers.0.self_attn.qkv.bias";
    let dir = edited_copy(|_| {}, None, Some(key));
    let err = load(dir.path(), -2).unwrap_err();
    assert!(
        matches!(&err, ModelError::UnusedKeys { keys, .. } if keys == &[key.to_string()]),
        "{err}"
    );
}

#[test]
fn head_keys_are_unused_only_when_the_config_declares_a_head() {
    let key = "vision_model.head.probe";
    let dir = edited_copy(|_| {}, None, Some(key));
    let err = load(dir.path(), -2).unwrap_err();
    assert!(err.to_string().contains(key), "{err}");
    let dir = edited_copy(|c| c["vision_use_head"] = true.into(), None, Some(key));
    load(dir.path(), -2).unwrap();
}

#[test]
fn transformers_5_layout_without_prefix_gives_the_same_features() {
    // transformers 5 saves `SiglipVisionModel` without the `vision_model.` prefix.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        tower_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let bytes = std::fs::read(tower_dir().join("model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, TensorView)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name.trim_start_matches("vision_model.").to_string(), view))
        .collect();
    serialize_to_file(tensors, None, &dir.path().join("model.safetensors")).unwrap();

    let device = Device::flex();
    let pixels = Tensor::<4>::random(
        [1, 3, 56, 56],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        (&device, DType::F32),
    );
    let want = load(&tower_dir(), -2)
        .unwrap()
        .forward(pixels.clone())
        .unwrap();
    let got = load(dir.path(), -2).unwrap().forward(pixels).unwrap();
    assert_eq!(
        got.into_data().try_to_vec::<f32>().unwrap(),
        want.into_data().try_to_vec::<f32>().unwrap()
    );
}

#[test]
fn unsupported_hidden_act_is_refused() {
    let dir = edited_copy(|c| c["hidden_act"] = "quick_gelu".into(), None, None);
    let err = load(dir.path(), -2).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ModelError::Config { .. }), "{message}");
    assert!(message.contains("config.json"), "{message}");
    assert!(message.contains("\"quick_gelu\""), "{message}");
}

#[test]
fn checkpoint_tensor_of_wrong_shape_is_named() {
    // The config claims a wider MLP than the checkpoint holds.
    let dir = edited_copy(|c| c["intermediate_size"] = 48.into(), None, None);
    let err = load(dir.path(), -2).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, ModelError::BadTensor { key, .. } if key == "vision_model.encoder.layers.0.mlp.fc1.weight"),
        "{message}"
    );
    assert!(
        message.contains("[64, 32]") && message.contains("[48, 32]"),
        "{message}"
    );
}

#[test]
fn select_layer_out_of_range_is_refused() {
    for select_layer in [4, -5] {
        let err = load(&tower_dir(), select_layer).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ModelError::Config { .. }), "{message}");
        assert!(
            message.contains(&format!("mm_vision_select_layer {select_layer}")),
            "{message}"
        );
    }
}

#[test]
fn pixels_of_wrong_shape_are_refused() {
    let device = Device::flex();
    let tower = load(&tower_dir(), -2).unwrap();
    for shape in [
        [2, 3, 28, 28],
        [2, 1, 56, 56],
        [1, 3, 56, 42],
        [0, 3, 56, 56],
    ] {
        let pixels = Tensor::<4>::zeros(shape, (&device, DType::F32));
        let err = tower.forward(pixels).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ModelError::Input(_)), "{message}");
        assert!(message.contains(&format!("{shape:?}")), "{message}");
        assert!(message.contains("[n_tiles >= 1, 3, 56, 56]"), "{message}");
    }
}
