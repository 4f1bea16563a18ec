//! Visual prompts, as the top Track 2 teams built them (wts.md §3): the **global** image is the
//! full frame with the pedestrian box in green and the vehicle box in blue (thickness 4), the
//! **local** image a crop around both subjects.
//!
//! Source of the conventions: CityLLaVA (2024 #1), `alibaba/AICITY2024_Track2_AliOpenTrek_
//! CityLLaVA`, file `data_preprocess/draw_bbox_on_frame.py` (the crop arithmetic lives there;
//! `extract_wts_frame_bbox_anno.py` only collects the first-frame boxes per phase):
//! - `draw_and_save_bboxes`: `cv2.rectangle((int(xmin), int(ymin)), (int(xmax), int(ymax)),
//!   color, thickness=4)`, green `(0,255,0)` pedestrian, BGR `(255,0,0)` = blue vehicle;
//! - `draw_and_save_bboxes_scale_version`: each box `enlarge_bbox` ×1.2 about its centre, then
//!   `constrain_bbox_within_frame` (Python `int()` truncation, clamp to the frame), union of
//!   the boxes (`calculate_combined_bbox`), `enlarge_bbox_square` with `scale` (default 1.5:
//!   both sides ×scale, then both set to the larger), truncation and clamping again, and
//!   `frame[ymin:ymax, xmin:xmax]`.
//!
//! [`crop_region`] reproduces that arithmetic step by step, including the truncations.

use std::path::PathBuf;

use image::{Rgb, RgbImage};

use crate::error::DatasetError;
use crate::geometry::BBox;

/// Pedestrian box colour (CityLLaVA / TrafficInternVL: green).
pub const PEDESTRIAN_GREEN: Rgb<u8> = Rgb([0, 255, 0]);
/// Vehicle box colour (CityLLaVA / TrafficInternVL: blue).
pub const VEHICLE_BLUE: Rgb<u8> = Rgb([0, 0, 255]);
/// Line thickness of the global image boxes in CityLLaVA `draw_and_save_bboxes`.
pub const CITYLLAVA_THICKNESS: u32 = 4;
/// Per-box enlargement before the union (CityLLaVA `enlarge_bbox(bbox, scale=1.2)`).
pub const CITYLLAVA_BOX_ENLARGE: f64 = 1.2;
/// Enlargement of the squared union (CityLLaVA `--scale`, default 1.5).
pub const CITYLLAVA_CROP_SCALE: f64 = 1.5;

/// Draws the outline of `b` with lines `thickness` pixels wide, clipped to the frame.
///
/// Like `cv2.rectangle` with the corners `(int(x), int(y))` and `(int(x + w), int(y + h))` that
/// CityLLaVA passes: each line is centred on its edge (for thickness 4: two pixels outside,
/// two inside, the edge pixel counting as inside). Parts outside the frame are simply not
/// drawn. Non-finite boxes and `thickness == 0` draw nothing.
pub fn draw_box(img: &mut RgbImage, b: &BBox, color: Rgb<u8>, thickness: u32) {
    if thickness == 0 || ![b.x, b.y, b.w, b.h].iter().all(|v| v.is_finite()) {
        return;
    }
    // Python int() truncates toward zero; `as i64` does the same (and saturates).
    let (x0, y0) = (b.x as i64, b.y as i64);
    let (x1, y1) = (b.x_max() as i64, b.y_max() as i64);
    let (x0, x1) = (x0.min(x1), x0.max(x1));
    let (y0, y1) = (y0.min(y1), y0.max(y1));
    let t = i64::from(thickness);
    let (lo, hi) = (t / 2, (t - 1) / 2);
    // Top and bottom bands span the full width including the corners.
    fill_clipped(img, x0 - lo, y0 - lo, x1 + hi, y0 + hi, color);
    fill_clipped(img, x0 - lo, y1 - lo, x1 + hi, y1 + hi, color);
    // Left and right bands.
    fill_clipped(img, x0 - lo, y0 - lo, x0 + hi, y1 + hi, color);
    fill_clipped(img, x1 - lo, y0 - lo, x1 + hi, y1 + hi, color);
}

/// Fills the inclusive pixel rectangle `[xa, xb] × [ya, yb]`, clipped to the image.
fn fill_clipped(img: &mut RgbImage, xa: i64, ya: i64, xb: i64, yb: i64, color: Rgb<u8>) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let (xa, ya) = (xa.max(0), ya.max(0));
    let (xb, yb) = (xb.min(w - 1), yb.min(h - 1));
    for y in ya..=yb {
        for x in xa..=xb {
            // In range by construction (0 <= x < w, 0 <= y < h).
            img.put_pixel(x as u32, y as u32, color);
        }
    }
}

/// Draws the CityLLaVA global visual prompt: pedestrian green, vehicle blue, thickness 4.
pub fn draw_subjects(img: &mut RgbImage, pedestrian: Option<&BBox>, vehicle: Option<&BBox>) {
    if let Some(b) = pedestrian {
        draw_box(img, b, PEDESTRIAN_GREEN, CITYLLAVA_THICKNESS);
    }
    if let Some(b) = vehicle {
        draw_box(img, b, VEHICLE_BLUE, CITYLLAVA_THICKNESS);
    }
}

/// The part of `b` inside a `width × height` frame, or `None` if nothing of it is inside
/// (the caller reports "bbox outside the frame"), including empty or non-finite boxes.
pub fn clip_to_frame(b: &BBox, width: u32, height: u32) -> Option<BBox> {
    if ![b.x, b.y, b.w, b.h].iter().all(|v| v.is_finite()) || b.w <= 0.0 || b.h <= 0.0 {
        return None;
    }
    let x0 = b.x.max(0.0);
    let y0 = b.y.max(0.0);
    let x1 = b.x_max().min(f64::from(width));
    let y1 = b.y_max().min(f64::from(height));
    (x1 > x0 && y1 > y0).then_some(BBox {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    })
}

/// CityLLaVA's local-crop region around `boxes` (pedestrian and/or vehicle) in a
/// `width × height` frame, as `(x, y, w, h)` in pixels (see the module docs):
/// each box ×1.2 about its centre, truncated and clamped to the frame; their union; made square
/// (larger side) and ×`scale` about its centre; truncated and clamped again.
/// Boxes that are empty, non-finite or entirely outside the frame are ignored; `None` if no box
/// remains or the region is empty.
pub fn crop_region(
    boxes: &[BBox],
    width: u32,
    height: u32,
    scale: f64,
) -> Option<(u32, u32, u32, u32)> {
    if !scale.is_finite() || scale <= 0.0 {
        return None;
    }
    let (fw, fh) = (i64::from(width), i64::from(height));
    // `constrain_bbox_within_frame`: int() then clamp.
    let constrain = |xmin: f64, ymin: f64, xmax: f64, ymax: f64| {
        (
            (xmin as i64).max(0),
            (ymin as i64).max(0),
            (xmax as i64).min(fw),
            (ymax as i64).min(fh),
        )
    };
    let mut union: Option<(i64, i64, i64, i64)> = None;
    for b in boxes {
        if ![b.x, b.y, b.w, b.h].iter().all(|v| v.is_finite()) || b.w <= 0.0 || b.h <= 0.0 {
            continue;
        }
        // `enlarge_bbox(bbox, scale=1.2)`.
        let (cx, cy) = (b.x + b.w / 2.0, b.y + b.h / 2.0);
        let (nw, nh) = (b.w * CITYLLAVA_BOX_ENLARGE, b.h * CITYLLAVA_BOX_ENLARGE);
        let (nx, ny) = (cx - nw / 2.0, cy - nh / 2.0);
        let (x0, y0, x1, y1) = constrain(nx, ny, nx + nw, ny + nh);
        if x1 <= x0 || y1 <= y0 {
            continue; // entirely outside the frame
        }
        // `calculate_combined_bbox`.
        union = Some(match union {
            None => (x0, y0, x1, y1),
            Some((a0, b0, a1, b1)) => (a0.min(x0), b0.min(y0), a1.max(x1), b1.max(y1)),
        });
    }
    let (x0, y0, x1, y1) = union?;
    // `enlarge_bbox_square(combined_bbox, scale)`.
    let (w, h) = ((x1 - x0) as f64, (y1 - y0) as f64);
    let (cx, cy) = (x0 as f64 + w / 2.0, y0 as f64 + h / 2.0);
    let side = (w * scale).max(h * scale);
    let (sx, sy) = (cx - side / 2.0, cy - side / 2.0);
    // `xmax, ymax = int(xmin + width), int(ymin + height)`; `xmin, ymin = int(xmin), int(ymin)`;
    // then `constrain_bbox_within_frame` once more.
    let (cx0, cy0, cx1, cy1) = constrain(sx, sy, sx + side, sy + side);
    if cx1 <= cx0 || cy1 <= cy0 {
        return None;
    }
    Some((
        cx0 as u32,
        cy0 as u32,
        (cx1 - cx0) as u32,
        (cy1 - cy0) as u32,
    ))
}

/// Copies `region = (x, y, w, h)` out of `img` (clamped to the image; an empty region gives an
/// empty image).
pub fn crop(img: &RgbImage, region: (u32, u32, u32, u32)) -> RgbImage {
    let (x, y, w, h) = region;
    let x = x.min(img.width());
    let y = y.min(img.height());
    let w = w.min(img.width() - x);
    let h = h.min(img.height() - y);
    image::imageops::crop_imm(img, x, y, w, h).to_image()
}

/// Encodes `img` as baseline JPEG at `quality` (clamped to 1..=100). The encoder is pure Rust
/// and single-threaded, so the same image always gives the same bytes.
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, DatasetError> {
    let mut out = Vec::new();
    let encoder =
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    img.write_with_encoder(encoder)
        .map_err(|e| DatasetError::Image {
            path: PathBuf::from("<JPEG encoder>"),
            message: format!("{}x{} image: {e}", img.width(), img.height()),
        })?;
    Ok(out)
}
