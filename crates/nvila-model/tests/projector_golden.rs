//! The `mlp_downsample_3x3_fix` and `mlp_downsample_2x2_fix` projectors against VILA's PyTorch
//! code (re-implemented line by line in `tests/fixtures/projector/gen.py`, which also checks
//! the token/channel layout element by element).
//!
//! Checkpoints: the 3x3 one in `fixtures/golden/tiny-nvila/mm_projector/` (the real layout),
//! the 2x2 one in `tests/fixtures/projector/2x2_fix/`. Reference values:
//! `tests/fixtures/projector/reference.safetensors`, per type and input grid: input, output of
//! the token merge (`layers.0`) and projector output. Grids 4x4 (3x3: padded to 6x6) and 6x6
//! (3x3: no padding), 5x5 (2x2: padded to 6x6) and 4x4 (2x2: no padding).
//! Regenerate: `python3 crates/nvila-model/tests/fixtures/projector/gen.py`.
//!
//! Tolerance: `max |a - b| / max |b| <= 1e-5` over the whole tensor (f32 throughout). The port
//! measures about 5e-7; with the tanh GELU instead of the exact one it measures 1.7e-4 to
//! 4.1e-4, so the bound is kept well below that.

mod common;
use common::{rel_err, to_f32};

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use nvila_model::Weights;
use nvila_model::projector::{DownSampleBlockFix, Projector, ProjectorConfig, ProjectorType};

const REL_TOL: f32 = 1e-5;
const N_TILES: usize = 2;
const MM_HIDDEN: usize = 32;
const LLM_HIDDEN: usize = 64;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn checkpoint_dir(projector_type: ProjectorType) -> PathBuf {
    match projector_type {
        ProjectorType::MlpDownsample3x3Fix => {
            manifest().join("../../fixtures/golden/tiny-nvila/mm_projector")
        }
        ProjectorType::MlpDownsample2x2Fix => manifest().join("tests/fixtures/projector/2x2_fix"),
    }
}

fn reference_file(device: &Device) -> Weights {
    let dir = manifest().join("tests/fixtures/projector");
    Weights::from_files(&dir, &[dir.join("reference.safetensors")], device, None).unwrap()
}

fn check(projector_type: ProjectorType, side: usize) {
    let device = Device::flex();
    let dir = checkpoint_dir(projector_type);
    let config = ProjectorConfig::from_file(&dir.join("config.json")).unwrap();
    assert_eq!(config.mm_projector_type, projector_type.name());
    let weights = Weights::open(&dir, &device, None).unwrap();
    let projector = Projector::load(&weights, &config, MM_HIDDEN, LLM_HIDDEN).unwrap();
    assert!(weights.unused_keys().is_empty());

    let k = projector_type.downsample_rate();
    let tokens_out = side.div_ceil(k).pow(2);
    assert_eq!(projector.tokens_out(side * side), Some(tokens_out));
    let short = if k == 3 { "3x3" } else { "2x2" };
    let prefix = format!("{short}.{side}x{side}");
    let file = reference_file(&device);
    let input: Tensor<3> = file
        .tensor(
            &format!("{prefix}.input"),
            [N_TILES, side * side, MM_HIDDEN],
        )
        .unwrap();
    let downsampled: Tensor<3> = file
        .tensor(
            &format!("{prefix}.downsampled"),
            [N_TILES, tokens_out, k * k * MM_HIDDEN],
        )
        .unwrap();
    let output: Tensor<3> = file
        .tensor(
            &format!("{prefix}.output"),
            [N_TILES, tokens_out, LLM_HIDDEN],
        )
        .unwrap();

    // The merge is a pure permutation plus zeros: exact.
    let merged = DownSampleBlockFix { rate: k }
        .forward(input.clone())
        .unwrap();
    assert_eq!(to_f32(merged), to_f32(downsampled), "{prefix}: token merge");

    let got = projector.forward(input).unwrap();
    assert_eq!(got.dims(), [N_TILES, tokens_out, LLM_HIDDEN]);
    let err = rel_err(&to_f32(got), &to_f32(output));
    eprintln!("{prefix}: relative error {err}");
    assert!(err <= REL_TOL, "{prefix}: relative error {err}");
}

#[test]
fn three_by_three_on_a_grid_that_needs_padding() {
    check(ProjectorType::MlpDownsample3x3Fix, 4);
}

#[test]
fn three_by_three_on_a_multiple_of_three() {
    check(ProjectorType::MlpDownsample3x3Fix, 6);
}

#[test]
fn two_by_two_on_an_odd_grid() {
    check(ProjectorType::MlpDownsample2x2Fix, 5);
}

#[test]
fn two_by_two_on_an_even_grid() {
    check(ProjectorType::MlpDownsample2x2Fix, 4);
}

#[test]
fn nvila_lite_shapes() {
    // 1024 SigLIP tokens (32x32) become 121 (11x11 after padding to 33x33).
    let projector_type = ProjectorType::MlpDownsample3x3Fix;
    let block = DownSampleBlockFix {
        rate: projector_type.downsample_rate(),
    };
    assert_eq!(block.tokens_out(1024), Some(121));
}
