//! Broken or unsupported adapters are refused with typed errors that name the file and the
//! problem; nothing panics.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, TensorData};
use common::{Lin, Mlp, fixtures};
use lora::{LoraError, LoraLinearConfig, PeftAdapter, lora_a_key, lora_b_key};
use safetensors::tensor::TensorView;

const CONFIG: &str = r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["fc1", "fc2"], "bias": "none"}"#;

/// An adapter folder with `config` and `tensors` written as given (no validation).
fn write_adapter(
    config: &str,
    tensors: &BTreeMap<String, TensorData>,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("adapter_config.json"), config).unwrap();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(k, d)| {
            let dtype = match d.dtype() {
                DType::F32 => safetensors::Dtype::F32,
                DType::I32 => safetensors::Dtype::I32,
                other => panic!("{other:?}"),
            };
            (
                k.clone(),
                TensorView::new(dtype, d.shape().as_slice().to_vec(), d.as_bytes()).unwrap(),
            )
        })
        .collect();
    let path = dir.path().join("adapter_model.safetensors");
    safetensors::serialize_to_file(views, None, &path).unwrap();
    (dir, path)
}

fn vanilla_tensors() -> BTreeMap<String, TensorData> {
    common::read(&fixtures().join("vanilla/adapter_model.safetensors"))
}

fn zeros(shape: [usize; 2]) -> TensorData {
    TensorData::zeros::<f32, _>(shape)
}

fn load_err(dir: &Path) -> (LoraError, String) {
    let e = PeftAdapter::load(dir).unwrap_err();
    let s = e.to_string();
    (e, s)
}

#[test]
fn r_zero_is_refused() {
    let (dir, _) = write_adapter(&CONFIG.replace("\"r\": 4", "\"r\": 0"), &vanilla_tensors());
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoraError::InvalidConfig(_)), "{s}");
    assert!(
        s.contains("adapter_config.json") && s.contains("r = 0"),
        "{s}"
    );
    let base = common::base_linear(
        &common::read(&fixtures().join("base_model.safetensors")),
        "head",
        &Device::flex(),
    );
    assert!(LoraLinearConfig::new(0, 8.0).init(base).is_err());
}

#[test]
fn dora_and_other_variants_are_refused() {
    for (field, needle) in [
        (r#""use_dora": true"#, "DoRA"),
        (r#""fan_in_fan_out": true"#, "fan_in_fan_out"),
        (r#""bias": "lora_only""#, "bias"),
        (r#""lora_bias": true"#, "lora_bias"),
    ] {
        let config = if field.starts_with("\"bias\"") {
            CONFIG.replace("\"bias\": \"none\"", field)
        } else {
            CONFIG.replace(
                "\"bias\": \"none\"",
                &format!("\"bias\": \"none\", {field}"),
            )
        };
        let (dir, _) = write_adapter(&config, &vanilla_tensors());
        let (e, s) = load_err(dir.path());
        assert!(matches!(e, LoraError::Unsupported { .. }), "{s}");
        assert!(
            s.contains(needle) && s.contains("adapter_config.json"),
            "{s}"
        );
    }
}

#[test]
fn missing_lora_b_is_named() {
    let mut tensors = vanilla_tensors();
    tensors.remove(&lora_b_key("layers.1.fc2"));
    let (dir, file) = write_adapter(CONFIG, &tensors);
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoraError::MissingKeys { .. }), "{s}");
    assert!(s.contains(&lora_b_key("layers.1.fc2")), "{s}");
    assert!(s.contains(&file.display().to_string()), "{s}");
}

#[test]
fn rank_that_disagrees_with_r_is_named() {
    let mut tensors = vanilla_tensors();
    tensors.insert(lora_a_key("layers.0.fc1"), zeros([3, 8]));
    tensors.insert(lora_b_key("layers.0.fc1"), zeros([16, 3]));
    let (dir, _) = write_adapter(CONFIG, &tensors);
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoraError::BadTensor { .. }), "{s}");
    assert!(
        s.contains(&lora_a_key("layers.0.fc1")) && s.contains("r = 4"),
        "{s}"
    );
}

#[test]
fn shapes_that_do_not_fit_the_base_layer_are_named() {
    let mut tensors = vanilla_tensors();
    tensors.insert(lora_a_key("layers.0.fc2"), zeros([4, 15]));
    let (dir, _) = write_adapter(CONFIG, &tensors);
    // Loading alone cannot know the base layer.
    let mut adapter = PeftAdapter::load(dir.path()).unwrap();
    let e = Mlp::build(&Device::flex(), |path, base| {
        Ok(if path == "head" {
            Lin::Plain(base)
        } else {
            Lin::Lora(adapter.wrap(path, base)?)
        })
    })
    .unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, LoraError::BadTensor { .. }), "{s}");
    assert!(
        s.contains(&lora_a_key("layers.0.fc2")) && s.contains("takes 16 inputs"),
        "{s}"
    );
}

#[test]
fn modules_the_model_lacks_are_named() {
    let mut tensors = vanilla_tensors();
    tensors.insert(lora_a_key("layers.7.fc1"), zeros([4, 8]));
    tensors.insert(lora_b_key("layers.7.fc1"), zeros([16, 4]));
    let (dir, _) = write_adapter(CONFIG, &tensors);
    let mut adapter = PeftAdapter::load(dir.path()).unwrap();
    let applied = adapter.clone();
    let model = Mlp::build(&Device::flex(), |path, base| {
        Ok(if path == "head" {
            Lin::Plain(base)
        } else {
            Lin::Lora(adapter.wrap(path, base)?)
        })
    })
    .unwrap();
    let s = adapter.finish().unwrap_err().to_string();
    assert!(
        s.contains("layers.7.fc1") && s.contains("does not have"),
        "{s}"
    );
    let e = applied.apply_to(model).unwrap_err();
    assert!(matches!(e, LoraError::UnknownModules { .. }), "{e}");
    assert!(e.to_string().contains("layers.7.fc1"), "{e}");
}

#[test]
fn a_layer_without_factors_is_missing_on_apply() {
    let mut tensors = vanilla_tensors();
    tensors.remove(&lora_a_key("layers.1.fc1"));
    tensors.remove(&lora_b_key("layers.1.fc1"));
    let (dir, _) = write_adapter(CONFIG, &tensors);
    let adapter = PeftAdapter::load(dir.path()).unwrap();
    let model = Mlp::build(&Device::flex(), |path, base| {
        Ok(if path == "head" {
            Lin::Plain(base)
        } else {
            Lin::Lora(LoraLinearConfig::new(4, 8.0).init(base)?)
        })
    })
    .unwrap();
    let e = adapter.apply_to(model).unwrap_err();
    assert!(matches!(e, LoraError::MissingKeys { .. }), "{e}");
    assert!(e.to_string().contains(&lora_b_key("layers.1.fc1")), "{e}");
}

#[test]
fn non_lora_keys_and_integer_tensors_are_refused() {
    let mut tensors = vanilla_tensors();
    tensors.insert(
        "base_model.model.layers.0.fc1.lora_magnitude_vector".into(),
        TensorData::zeros::<f32, _>([16]),
    );
    let (dir, _) = write_adapter(CONFIG, &tensors);
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoraError::UnexpectedKeys { .. }), "{s}");
    assert!(s.contains("lora_magnitude_vector"), "{s}");

    let mut tensors = vanilla_tensors();
    tensors.insert(
        lora_a_key("layers.0.fc1"),
        TensorData::zeros::<i32, _>([4, 8]),
    );
    let (dir, _) = write_adapter(CONFIG, &tensors);
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoraError::BadTensor { .. }), "{s}");
    assert!(s.contains("I32"), "{s}");
}

#[test]
fn corrupt_files_are_refused_by_name() {
    let (dir, file) = write_adapter(CONFIG, &vanilla_tensors());
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 7]).unwrap();
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoraError::Safetensors { .. }), "{s}");
    assert!(s.contains("adapter_model.safetensors"), "{s}");

    std::fs::write(&file, b"garbage").unwrap();
    assert!(matches!(
        load_err(dir.path()).0,
        LoraError::Safetensors { .. }
    ));

    std::fs::write(dir.path().join("adapter_config.json"), "{\"r\": ").unwrap();
    let (e, s) = load_err(dir.path());
    assert!(matches!(e, LoraError::Json { .. }), "{s}");

    std::fs::remove_file(dir.path().join("adapter_config.json")).unwrap();
    let (e, s) = load_err(dir.path());
    assert!(
        matches!(e, LoraError::Io { .. }) && s.contains("adapter_config.json"),
        "{s}"
    );
}
