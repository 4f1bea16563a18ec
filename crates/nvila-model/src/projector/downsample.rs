//! VILA's `DownSample2x2BlockFix` / `DownSample3x3BlockFix`
//! (`llava/model/multimodal_projector/base_projector.py`, `flat_square_2x2` / `flat_square_3x3`):
//! merge each k×k block of the square token grid into one token with k²·C channels.
//!
//! What VILA's view/permute chain computes (checked element by element in
//! `tests/fixtures/projector/gen.py::check_layout`):
//! 1. tokens `[n, s*s, C]` are a row-major `s×s` grid;
//! 2. zero rows are appended at the bottom, then zero columns at the right, up to the next
//!    multiple of k (`3 - s % 3` for 3x3, so 32 → 33 and 4 → 6; one for odd sides in 2x2);
//! 3. output token `t = q * G + g` (row-major over block row q and block column g, `G` blocks
//!    per side);
//! 4. output channel `(dr * k + dc) * C + c` holds grid cell `(q*k + dr, g*k + dc)`, channel c.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::ops::PadMode;

use crate::error::ModelError;

/// `layers.0` of the `mlp_downsample_*_fix` projectors; no parameters.
#[derive(Module, Debug)]
pub struct DownSampleBlockFix {
    /// Block side k (2 or 3).
    pub rate: usize,
}

impl DownSampleBlockFix {
    /// Output tokens for `n_tokens` input tokens: `ceil(s / k)^2` with `s = sqrt(n_tokens)`, or
    /// `None` if `n_tokens` is not a positive square.
    pub fn tokens_out(&self, n_tokens: usize) -> Option<usize> {
        let side = square_side(n_tokens)?;
        let blocks = side.div_ceil(self.rate);
        Some(blocks * blocks)
    }

    /// # Shapes
    /// - `x`: `[n_tiles, s*s, C]`, a row-major square grid of tokens
    /// - returns: `[n_tiles, ceil(s/k)^2, k*k*C]`
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<3>, ModelError> {
        let [n_tiles, n_tokens, channels] = x.dims();
        let k = self.rate;
        let side = square_side(n_tokens).ok_or_else(|| {
            ModelError::Input(format!(
                "projector: {n_tokens} tokens per tile do not form a square grid, which the \
                 {k}x{k} downsample needs"
            ))
        })?;
        let blocks = side.div_ceil(k);
        let pad = blocks * k - side;
        // [n, s, s, C], zero-padded at the bottom and right to [n, G*k, G*k, C].
        let grid = x
            .reshape([n_tiles, side, side, channels])
            .pad([(0, pad), (0, pad), (0, 0)], PadMode::Constant(0.0));
        // [n, q, dr, g, dc, C] -> [n, q, g, dr, dc, C] -> [n, q*G + g, (dr*k + dc)*C + c].
        let merged = grid
            .reshape([n_tiles, blocks, k, blocks, k, channels])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([n_tiles, blocks * blocks, k * k * channels]);
        Ok(merged)
    }
}

/// `s` with `s * s == n`, for `n >= 1`. VILA takes `int(n ** 0.5)` and its reshape fails on
/// anything else.
fn square_side(n: usize) -> Option<usize> {
    let side = (n as f64).sqrt().round() as usize;
    (n > 0 && side * side == n).then_some(side)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{DType, Device, TensorData};

    /// A 4x4 grid (16 tokens, 1 channel, value = token index + 1) through the 3x3 block:
    /// padded to 6x6, 4 output tokens of 9 channels each.
    #[test]
    fn three_by_three_pads_bottom_and_right_and_orders_row_major() {
        let device = Device::flex();
        let values: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        let x = Tensor::<3>::from_data(TensorData::new(values, [1, 16, 1]), (&device, DType::F32));
        let out = DownSampleBlockFix { rate: 3 }.forward(x).unwrap();
        assert_eq!(out.dims(), [1, 4, 9]);
        let out = out.into_data().try_to_vec::<f32>().unwrap();
        // Grid rows: [1 2 3 4], [5 6 7 8], [9 10 11 12], [13 14 15 16], then zeros.
        #[rustfmt::skip]
        let expected = [
            1., 2., 3., 5., 6., 7., 9., 10., 11.,  // block (0, 0)
            4., 0., 0., 8., 0., 0., 12., 0., 0.,   // block (0, 1)
            13., 14., 15., 0., 0., 0., 0., 0., 0., // block (1, 0)
            16., 0., 0., 0., 0., 0., 0., 0., 0.,   // block (1, 1)
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn two_by_two_interleaves_channels_per_cell() {
        let device = Device::flex();
        // 2x2 grid, 2 channels: cell (r, c) holds [10*(2r+c), 10*(2r+c) + 1].
        let values: Vec<f32> = vec![0., 1., 10., 11., 20., 21., 30., 31.];
        let x = Tensor::<3>::from_data(
            TensorData::new(values.clone(), [1, 4, 2]),
            (&device, DType::F32),
        );
        let out = DownSampleBlockFix { rate: 2 }.forward(x).unwrap();
        assert_eq!(out.dims(), [1, 1, 8]);
        assert_eq!(out.into_data().try_to_vec::<f32>().unwrap(), values);
    }

    #[test]
    fn non_square_token_count_is_an_error() {
        let device = Device::flex();
        let x = Tensor::<3>::zeros([1, 15, 4], (&device, DType::F32));
        let err = DownSampleBlockFix { rate: 3 }.forward(x).unwrap_err();
        assert!(err.to_string().contains("15 tokens"), "{err}");
        assert_eq!(DownSampleBlockFix { rate: 3 }.tokens_out(1024), Some(121));
        assert_eq!(DownSampleBlockFix { rate: 2 }.tokens_out(25), Some(9));
        assert_eq!(DownSampleBlockFix { rate: 2 }.tokens_out(0), None);
    }
}
