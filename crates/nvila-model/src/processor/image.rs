//! Image input: decoding with size limits, and the SigLIP processor's rescale + normalise.

use std::io::Cursor;
use std::path::Path;

use image::{ImageReader, RgbImage};

use crate::error::ModelError;

/// Largest accepted image, in pixels: Pillow's `Image.MAX_IMAGE_PIXELS` (89,478,485, the size at
/// which Pillow itself starts warning about decompression bombs). A 20000×20000 image (400 M px,
/// 1.2 GB as RGB) is refused from its header, before any pixel buffer is allocated.
pub const MAX_IMAGE_PIXELS: u64 = 1024 * 1024 * 1024 / 4 / 3;

/// Largest accepted side, in pixels, whatever the area (keeps `W·H` and resize targets small).
pub const MAX_IMAGE_SIDE: u32 = 65_535;

/// Check an image size against the limits above. `what` names the image in the error.
pub fn check_image_size(what: &str, width: u32, height: u32) -> Result<(), ModelError> {
    if width == 0 || height == 0 {
        return Err(ModelError::Image {
            what: what.to_owned(),
            message: format!("empty image ({width}×{height})"),
        });
    }
    let pixels = u64::from(width) * u64::from(height);
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE || pixels > MAX_IMAGE_PIXELS {
        return Err(ModelError::Image {
            what: what.to_owned(),
            message: format!(
                "{width}×{height} ({pixels} px) is larger than the limit of {MAX_IMAGE_PIXELS} px \
                 and {MAX_IMAGE_SIDE} px a side; refusing to decode it"
            ),
        });
    }
    Ok(())
}

/// Decode an encoded image (PNG or JPEG) to 8-bit RGB, checking its size from the header before
/// decoding. Like PIL's `convert("RGB")`, grey is replicated and alpha is dropped (no
/// compositing). `what` names the image in errors (a path or an index).
pub fn decode_image(bytes: &[u8], what: &str) -> Result<RgbImage, ModelError> {
    let bad = |message: String| ModelError::Image {
        what: what.to_owned(),
        message,
    };
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(bad(
            "unknown image format (PNG and JPEG are supported)".to_owned()
        ));
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| bad(format!("cannot decode header: {e}")))?;
    check_image_size(what, w, h)?;
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    let img = reader
        .decode()
        .map_err(|e| bad(format!("cannot decode: {e}")))?;
    Ok(img.to_rgb8())
}

/// Read and decode an image file (see [`decode_image`]).
pub fn load_image(path: &Path) -> Result<RgbImage, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_owned(),
        source,
    })?;
    decode_image(&bytes, &path.display().to_string())
}

/// The SigLIP processor's `rescale(1/255)` + `normalize(mean 0.5, std 0.5)` of one tile, HWC u8 →
/// CHW f32, appended to `out`.
///
/// transformers' slow image processor (VILA pins 4.46) rescales in float64 and casts to float32
/// (`image_transforms.rescale`), then normalises in float32 (`image_transforms.normalize`); the
/// same operation order gives the same float32 values.
pub fn normalize_into(tile: &RgbImage, out: &mut Vec<f32>) {
    let (w, h) = (tile.width() as usize, tile.height() as usize);
    let raw = tile.as_raw();
    out.reserve(3 * w * h);
    for c in 0..3 {
        out.extend(raw.chunks_exact(3).map(|px| {
            let r = (f64::from(px[c]) * (1.0 / 255.0)) as f32;
            (r - 0.5f32) / 0.5f32
        }));
    }
}
