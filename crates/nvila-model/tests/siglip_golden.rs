//! The SigLIP vision tower against PyTorch `transformers` on the tiny random checkpoint in
//! `fixtures/golden/tiny-nvila/vision_tower/` (keys `vision_model.*`, as VILA saves it).
//!
//! Reference values: `tests/fixtures/siglip/reference.safetensors` (`pixel_values` for 2 tiles
//! and every hidden state), written with the checkpoint by `tests/fixtures/siglip/gen.py`
//! (regenerate: `python3 crates/nvila-model/tests/fixtures/siglip/gen.py`).
//!
//! Tolerance: `max |a - b| / max |b| <= 1e-5` over the whole tensor (f32 throughout). The port
//! measures about 3e-7; the bound is tighter than the 1e-4 used elsewhere because the tanh and
//! erf GELUs differ by only 1.06e-4 on this fixture, and a tower with the wrong GELU must fail.

mod common;
use common::{rel_err, to_f32};

use std::path::PathBuf;

use burn::tensor::{DType, Device, Tensor};
use nvila_model::Weights;
use nvila_model::vision::tower::DEFAULT_SELECT_LAYER;
use nvila_model::vision::{SiglipVisionConfig, SiglipVisionTower};

const REL_TOL: f32 = 1e-5;
const N_TILES: usize = 2;
const N_LAYERS: usize = 3;
const TOKENS: usize = 16;
const HIDDEN: usize = 32;

fn tower_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/tiny-nvila/vision_tower")
}

struct Reference {
    pixel_values: Tensor<4>,
    /// `[N_LAYERS + 1, N_TILES, TOKENS, HIDDEN]`: embeddings, then each layer's output.
    hidden_states: Tensor<4>,
}

fn reference(device: &Device) -> Reference {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/siglip");
    let file =
        Weights::from_files(&dir, &[dir.join("reference.safetensors")], device, None).unwrap();
    Reference {
        pixel_values: file.tensor("pixel_values", [N_TILES, 3, 56, 56]).unwrap(),
        hidden_states: file
            .tensor("hidden_states", [N_LAYERS + 1, N_TILES, TOKENS, HIDDEN])
            .unwrap(),
    }
}

/// `hidden_states[index]` with Python indexing.
fn hidden_state(reference: &Reference, index: isize) -> Tensor<3> {
    let i = index.rem_euclid(N_LAYERS as isize + 1) as usize;
    reference
        .hidden_states
        .clone()
        .narrow(0, i, 1)
        .squeeze_dim::<3>(0)
}

fn check_select_layer(select_layer: isize, expected_layers: usize) {
    let device = Device::flex();
    let reference = reference(&device);
    let tower =
        SiglipVisionTower::from_pretrained(&tower_dir(), &device, None, select_layer).unwrap();
    assert_eq!(tower.n_layers_run(), expected_layers);
    let features = tower.forward(reference.pixel_values.clone()).unwrap();
    assert_eq!(features.dims(), [N_TILES, TOKENS, HIDDEN]);
    let err = rel_err(
        &to_f32(features),
        &to_f32(hidden_state(&reference, select_layer)),
    );
    eprintln!("select_layer {select_layer}: relative error {err}");
    assert!(
        err <= REL_TOL,
        "select_layer {select_layer}: relative error {err}"
    );
}

#[test]
fn nvila_select_layer_gives_second_to_last_hidden_state() {
    // -2: the output of layer 2 of 3; layer 3 and post_layernorm are in the file but unused.
    check_select_layer(DEFAULT_SELECT_LAYER, 2);
}

#[test]
fn other_select_layers_match_their_hidden_states() {
    check_select_layer(-1, 3);
    check_select_layer(0, 0);
    check_select_layer(1, 1);
    check_select_layer(-4, 0);
}

#[test]
fn load_through_config_and_weights() {
    // The path the full model takes: config and weights opened separately.
    let device = Device::flex();
    let config = SiglipVisionConfig::from_file(&tower_dir().join("config.json")).unwrap();
    assert_eq!(config.num_patches(), TOKENS);
    assert!(!config.vision_use_head);
    let weights = Weights::open(&tower_dir(), &device, None).unwrap();
    let tower = SiglipVisionTower::load(&weights, &config, -2).unwrap();
    // The keys left over are exactly the last layer and post_layernorm.
    let unused = weights.unused_keys();
    assert_eq!(unused.len(), 16 + 2, "{unused:?}");
    assert!(
        unused
            .iter()
            .all(|k| k.starts_with("vision_model.encoder.layers.2.")
                || k.starts_with("vision_model.post_layernorm."))
    );
    let reference = reference(&device);
    let features = tower.forward(reference.pixel_values.clone()).unwrap();
    let err = rel_err(&to_f32(features), &to_f32(hidden_state(&reference, -2)));
    assert!(err <= REL_TOL, "relative error {err}");
}

#[test]
fn bf16_weights_stay_close() {
    // The real checkpoint is bf16; this only bounds the drift of a bf16 forward (8 mantissa
    // bits through 2 layers), the f32 tests above check the math.
    let device = Device::flex();
    let reference = reference(&device);
    let tower =
        SiglipVisionTower::from_pretrained(&tower_dir(), &device, Some(DType::BF16), -2).unwrap();
    let features = tower.forward(reference.pixel_values.clone()).unwrap();
    assert_eq!(features.dtype(), DType::BF16);
    let err = rel_err(&to_f32(features), &to_f32(hidden_state(&reference, -2)));
    eprintln!("bf16 relative error {err}");
    assert!(err <= 2e-2, "bf16 relative error {err}");
}
