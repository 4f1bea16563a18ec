//! Helpers shared by the golden and loading tests of `nvila-model`.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::Path;

use burn::tensor::{DType, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::{SafeTensors, serialize_to_file};

/// A tensor's values as f32, whatever its dtype.
pub fn to_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.cast(DType::F32).into_data().try_to_vec::<f32>().unwrap()
}

/// `max |a - b| / max |b|`.
pub fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

/// Writes `src` to `dst` without `drop_key` and with `extra_key` (f32 zeros of shape `[2]`):
/// the broken checkpoints of the loading tests.
pub fn copy_safetensors_edited(
    src: &Path,
    dst: &Path,
    drop_key: Option<&str>,
    extra_key: Option<&str>,
) {
    let bytes = std::fs::read(src).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let zeros = vec![0u8; 8];
    let mut tensors: Vec<(String, TensorView)> = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| Some(name.as_str()) != drop_key)
        .collect();
    if let Some(key) = extra_key {
        tensors.push((
            key.to_string(),
            TensorView::new(Dtype::F32, vec![2], &zeros).unwrap(),
        ));
    }
    serialize_to_file(tensors, None, dst).unwrap();
}
