//! Pillow's `Image.resize` for 8-bit RGB with the BICUBIC filter, bit for bit.
//!
//! VILA resizes with PIL's default resample, which for RGB is BICUBIC (`PIL/Image.py::resize`,
//! `resample=None` → `Resampling.BICUBIC` unless the mode has a `;`), and transformers' slow
//! `SiglipImageProcessor` (VILA pins transformers 4.46) resizes through PIL too. This is a port of
//! `src/libImaging/Resample.c` (Pillow 9–13):
//! - `precompute_coeffs`: a convolution kernel per output pixel; the filter support is scaled by
//!   the downscale factor (antialiasing), bounds are rounded with `(int)(x + 0.5)` and clamped;
//! - `normalize_coeffs_8bpc`: coefficients become fixed point with `PRECISION_BITS = 22`, rounded
//!   half away from zero;
//! - two separable passes (`ImagingResampleInner`), each rounding (`+ 1 << 21`) and clipping to
//!   `0..=255` into an 8-bit intermediate image; a pass runs only when its size changes, and the
//!   horizontal-first path only computes the rows the vertical pass reads;
//! - the pass order: always horizontal first up to Pillow 12; Pillow 13 does the vertical pass
//!   first when the height shrinks by more than twice the width (python-pillow/Pillow#9549,
//!   read in the 13.0.0 sdist). [`PillowVersion`] picks one; the golden tests check both.

use image::RgbImage;

/// `PRECISION_BITS` in Resample.c: 32 bits − 8 (pixel) − 2 (headroom for negative lobes).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `bicubic_filter` (a = −0.5, support 2).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per-output-pixel kernels for one axis: `(first input index, taps, fixed-point weights)`.
struct Kernels {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

/// `precompute_coeffs` + `normalize_coeffs_8bpc` for the full box `0..in_size`.
fn kernels(in_size: usize, out_size: usize) -> Kernels {
    const SUPPORT: f64 = 2.0;
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's `(int)` truncates toward zero; the clamp to 0 makes that equal to a floor here.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let taps = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, slot) in k.iter_mut().enumerate().take(taps) {
            let w = bicubic(((x + xmin) as f64 - center + 0.5) * ss);
            *slot = w;
            ww += w;
        }
        let scale_fp = f64::from(1u32 << PRECISION_BITS);
        for x in 0..taps {
            let w = if ww != 0.0 { k[x] / ww } else { k[x] };
            // `normalize_coeffs_8bpc`: round half away from zero, then C truncation.
            weights[xx * ksize + x] = if w < 0.0 {
                (-0.5 + w * scale_fp) as i32
            } else {
                (0.5 + w * scale_fp) as i32
            };
        }
        bounds.push((xmin, taps));
    }
    Kernels {
        ksize,
        bounds,
        weights,
    }
}

/// Pillow's `clip8`: drop the fixed-point fraction and clamp to a byte.
fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Which Pillow's pass order to reproduce. The pixel arithmetic is the same in both; only the
/// order of the two 8-bit-rounded passes differs, which changes results by a few levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PillowVersion {
    /// Pillow ≤ 12: always horizontal then vertical. VILA's stack when NVILA was trained
    /// (transformers 4.46, 2024–2025) and the default here.
    #[default]
    Pillow12,
    /// Pillow ≥ 13 (python-pillow/Pillow#9549): vertical first when the height shrinks by more
    /// than twice what the width shrinks (`in_h - out_h > 0 && in_h - out_h > 2·(in_w - out_w)`),
    /// e.g. the thumbnail of a tall image.
    Pillow13,
}

/// Horizontal pass (`ImagingResampleHorizontal_8bpc`, 3 bands) over `rows` of `src`.
fn horizontal_pass(src: &[u8], src_w: usize, rows: std::ops::Range<usize>, k: &Kernels) -> Vec<u8> {
    let out_w = k.bounds.len();
    let mut out = vec![0u8; rows.len() * out_w * 3];
    let half = 1i64 << (PRECISION_BITS - 1);
    for (y, sy) in rows.enumerate() {
        let src_row = &src[sy * src_w * 3..(sy + 1) * src_w * 3];
        let dst_row = &mut out[y * out_w * 3..(y + 1) * out_w * 3];
        for (xx, &(xmin, taps)) in k.bounds.iter().enumerate() {
            let w = &k.weights[xx * k.ksize..xx * k.ksize + taps];
            let mut ss = [half; 3];
            for (x, &wx) in w.iter().enumerate() {
                let p = (xmin + x) * 3;
                for c in 0..3 {
                    ss[c] += i64::from(src_row[p + c]) * i64::from(wx);
                }
            }
            for c in 0..3 {
                dst_row[xx * 3 + c] = clip8(ss[c]);
            }
        }
    }
    out
}

/// Vertical pass (`ImagingResampleVertical_8bpc`, 3 bands); the kernels' first rows are shifted
/// down by `row_offset` (the rows the horizontal pass skipped).
fn vertical_pass(src: &[u8], w: usize, row_offset: usize, k: &Kernels) -> Vec<u8> {
    let out_h = k.bounds.len();
    let mut out = vec![0u8; w * out_h * 3];
    let half = 1i64 << (PRECISION_BITS - 1);
    for (yy, &(ymin, taps)) in k.bounds.iter().enumerate() {
        let wy = &k.weights[yy * k.ksize..yy * k.ksize + taps];
        let ymin = ymin - row_offset;
        let dst_row = &mut out[yy * w * 3..(yy + 1) * w * 3];
        for xx in 0..w {
            let mut ss = [half; 3];
            for (y, &wt) in wy.iter().enumerate() {
                let p = ((ymin + y) * w + xx) * 3;
                for c in 0..3 {
                    ss[c] += i64::from(src[p + c]) * i64::from(wt);
                }
            }
            for c in 0..3 {
                dst_row[xx * 3 + c] = clip8(ss[c]);
            }
        }
    }
    out
}

/// Resize like `PIL.Image.Image.resize((out_w, out_h))` on an RGB image (BICUBIC, no box, no
/// `reducing_gap`) under Pillow ≤ 12. Same size returns a copy, as Pillow does.
pub fn resize_bicubic(src: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    resize_bicubic_as(src, out_w, out_h, PillowVersion::Pillow12)
}

/// [`resize_bicubic`] with the pass order of the given Pillow version
/// (`ImagingResampleInner`). A zero size gives an empty image (callers validate sizes first).
pub fn resize_bicubic_as(
    src: &RgbImage,
    out_w: u32,
    out_h: u32,
    version: PillowVersion,
) -> RgbImage {
    let (in_w, in_h) = (src.width() as usize, src.height() as usize);
    let (ow, oh) = (out_w as usize, out_h as usize);
    if (in_w, in_h) == (ow, oh) {
        return src.clone();
    }
    if in_w == 0 || in_h == 0 || ow == 0 || oh == 0 {
        return RgbImage::new(out_w, out_h);
    }
    let need_h = in_w != ow;
    let need_v = in_h != oh;
    let vertical_first = match version {
        PillowVersion::Pillow12 => false,
        PillowVersion::Pillow13 => {
            let dh = in_h as i64 - oh as i64;
            let dw = in_w as i64 - ow as i64;
            dh > 0 && dh > dw * 2
        }
    };
    let raw = src.as_raw();
    let out = if vertical_first {
        let vert = kernels(in_h, oh);
        let tmp = vertical_pass(raw, in_w, 0, &vert);
        if need_h {
            horizontal_pass(&tmp, in_w, 0..oh, &kernels(in_w, ow))
        } else {
            tmp
        }
    } else {
        let vert = kernels(in_h, oh);
        if need_h {
            // Only the rows the vertical pass reads (`ybox_first..ybox_last`).
            let first = vert.bounds[0].0;
            let (lmin, ltaps) = vert.bounds[oh - 1];
            let tmp = horizontal_pass(raw, in_w, first..lmin + ltaps, &kernels(in_w, ow));
            if need_v {
                vertical_pass(&tmp, ow, first, &vert)
            } else {
                tmp
            }
        } else {
            vertical_pass(raw, in_w, 0, &vert)
        }
    };
    RgbImage::from_raw(out_w, out_h, out).unwrap_or_else(|| RgbImage::new(out_w, out_h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_a_copy() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8, y as u8, 7]));
        assert_eq!(resize_bicubic(&img, 5, 3), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(13, 7, image::Rgb([200, 3, 255]));
        let out = resize_bicubic(&img, 56, 56);
        assert!(out.pixels().all(|p| p.0 == [200, 3, 255]));
        let out = resize_bicubic(&img, 2, 3);
        assert!(out.pixels().all(|p| p.0 == [200, 3, 255]));
    }

    #[test]
    fn kernel_weights_sum_to_one_in_fixed_point() {
        let k = kernels(300, 56);
        for (xx, &(_, taps)) in k.bounds.iter().enumerate() {
            let s: i64 = k.weights[xx * k.ksize..xx * k.ksize + taps]
                .iter()
                .map(|&w| i64::from(w))
                .sum();
            assert!((s - (1 << PRECISION_BITS)).abs() <= taps as i64, "{s}");
        }
    }
}
