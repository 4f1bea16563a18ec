//! Non-LoRA trainables: VILA's `torch.save` files read without executing them, and the
//! safetensors round trip through a module with PyTorch names and layouts.

mod common;

use std::path::Path;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{DType, Device, TensorData};
use common::fixtures;
use lora::{
    LoraError, apply_non_lora_trainables, load_non_lora_trainables, non_lora_trainables,
    save_non_lora_trainables,
};

/// Shaped like `make_peft.py::make_non_lora`: torch `nn.Sequential` indices 0, 1 and 3 are
/// linear (2 is an activation, hence `None`).
#[derive(Module, Debug)]
struct Projector {
    layers: Vec<Option<Linear>>,
}

#[derive(Module, Debug)]
struct Vlm {
    mm_projector: Projector,
    frozen: Linear,
}

fn vlm(device: &Device) -> Vlm {
    Vlm {
        mm_projector: Projector {
            layers: vec![
                Some(LinearConfig::new(3, 2).with_bias(false).init(device)),
                Some(LinearConfig::new(4, 3).init(device)),
                None,
                Some(LinearConfig::new(3, 2).init(device)),
            ],
        },
        frozen: LinearConfig::new(2, 2).init(device).no_grad(),
    }
}

fn f32s(data: &TensorData) -> Vec<f32> {
    data.clone()
        .convert_dtype(DType::F32)
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn empty_torch_save_reads_as_empty() {
    let tensors = load_non_lora_trainables(&fixtures().join("non_lora_empty.bin")).unwrap();
    assert!(tensors.is_empty());
}

#[test]
fn torch_save_tensors_match_the_safetensors_copy_bit_for_bit() {
    let bin = load_non_lora_trainables(&fixtures().join("non_lora_tensors.bin")).unwrap();
    let st = load_non_lora_trainables(&fixtures().join("non_lora_tensors.safetensors")).unwrap();
    assert_eq!(bin.len(), 5);
    // bf16, f16, a transposed view and a view with a storage offset, all exact.
    assert_eq!(bin, st);
    assert_eq!(
        bin["base_model.model.mm_projector.layers.1.bias"].dtype(),
        DType::BF16
    );
}

#[test]
fn pickled_objects_and_integer_tensors_are_refused_by_name() {
    for (file, needle) in [
        ("refused_module.bin", "torch.nn.modules.linear"),
        ("refused_int64.bin", "LongStorage"),
    ] {
        let path = fixtures().join(file);
        let e = load_non_lora_trainables(&path).unwrap_err();
        let s = e.to_string();
        assert!(matches!(e, LoraError::Pickle { .. }), "{s}");
        assert!(
            s.contains(file) && s.contains(needle) && s.contains("safetensors"),
            "{s}"
        );
    }
}

#[test]
fn damaged_torch_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixtures().join("non_lora_tensors.bin")).unwrap();
    // The first entry is data.pkl, stored right after its local header.
    bytes[80] ^= 0xff;
    let path = dir.path().join("non_lora_trainables.bin");
    std::fs::write(&path, &bytes).unwrap();
    let s = load_non_lora_trainables(&path).unwrap_err().to_string();
    assert!(
        s.contains("non_lora_trainables.bin") && s.contains("CRC"),
        "{s}"
    );
    std::fs::write(&path, b"\x80\x02}q\x00.").unwrap();
    let s = load_non_lora_trainables(&path).unwrap_err().to_string();
    assert!(s.contains("legacy"), "{s}");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(load_non_lora_trainables(&path).is_err());
}

#[test]
fn vila_file_loads_into_a_module_with_torch_layouts() {
    let device = Device::flex();
    let source = fixtures().join("non_lora_tensors.bin");
    let tensors = load_non_lora_trainables(&source).unwrap();
    let model = apply_non_lora_trainables(vlm(&device), &tensors, &source).unwrap();
    let layer1 = model.mm_projector.layers[1].as_ref().unwrap();
    // torch [out, in] = [3, 4] becomes burn's [in, out] = [4, 3].
    let torch_w = f32s(&tensors["base_model.model.mm_projector.layers.1.weight"]);
    let burn_w = f32s(&layer1.weight.val().into_data());
    assert_eq!(layer1.weight.dims(), [4, 3]);
    for o in 0..3 {
        for i in 0..4 {
            assert_eq!(burn_w[i * 3 + o], torch_w[o * 4 + i]);
        }
    }
    // bf16 on disk, f32 in the model: the parameter keeps its dtype.
    assert_eq!(layer1.bias.as_ref().unwrap().dtype(), DType::F32);
    assert_eq!(
        f32s(&layer1.bias.as_ref().unwrap().val().into_data()),
        f32s(&tensors["base_model.model.mm_projector.layers.1.bias"])
    );
}

#[test]
fn trainables_round_trip_through_safetensors() {
    let device = Device::flex().autodiff();
    let model = vlm(&device);
    let tensors = non_lora_trainables(&model).unwrap();
    let keys: Vec<&str> = tensors.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "base_model.model.mm_projector.layers.0.weight",
            "base_model.model.mm_projector.layers.1.bias",
            "base_model.model.mm_projector.layers.1.weight",
            "base_model.model.mm_projector.layers.3.bias",
            "base_model.model.mm_projector.layers.3.weight",
        ],
        "frozen parameters are not trainables"
    );
    assert_eq!(
        tensors["base_model.model.mm_projector.layers.1.weight"]
            .shape()
            .as_slice(),
        &[3, 4]
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(lora::NON_LORA_TRAINABLES_FILE);
    save_non_lora_trainables(&path, &tensors).unwrap();
    let read = load_non_lora_trainables(&path).unwrap();
    assert_eq!(read, tensors);
    let fresh = apply_non_lora_trainables(vlm(&device), &read, &path).unwrap();
    assert_eq!(non_lora_trainables(&fresh).unwrap(), tensors);
}

#[test]
fn unknown_keys_and_wrong_shapes_are_named() {
    let device = Device::flex();
    let source = Path::new("some/non_lora_trainables.safetensors");
    let mut tensors = load_non_lora_trainables(&fixtures().join("non_lora_tensors.bin")).unwrap();
    tensors.insert(
        "base_model.model.mm_projector.layers.9.weight".into(),
        TensorData::zeros::<f32, _>([2, 2]),
    );
    let e = apply_non_lora_trainables(vlm(&device), &tensors, source).unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, LoraError::UnknownModules { .. }), "{s}");
    assert!(
        s.contains("layers.9.weight") && s.contains("some/non_lora"),
        "{s}"
    );

    tensors.remove("base_model.model.mm_projector.layers.9.weight");
    tensors.insert(
        "base_model.model.mm_projector.layers.1.weight".into(),
        TensorData::zeros::<f32, _>([4, 3]),
    );
    let e = apply_non_lora_trainables(vlm(&device), &tensors, source).unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, LoraError::BadTensor { .. }), "{s}");
    assert!(s.contains("[4, 3]") && s.contains("[3, 4]"), "{s}");
}
