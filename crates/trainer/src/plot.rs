//! The loss curve as a PNG (x = optimizer step, y = loss), drawn with the `image` crate only:
//! axes, grid lines at "nice" ticks (1, 2, 5 × 10ᵏ), tick labels in a built-in 3×5 pixel font
//! (digits, `.`, `-`, `e` — no font dependency), and the curve as a 2-pixel polyline.
//! Non-finite losses break the line. The file is written atomically.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, Rgb, RgbImage};

use crate::checkpoint;

/// Errors while drawing or writing the plot.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The requested image is too small to hold axes and labels.
    #[error("a {width}x{height} plot is too small (at least {MIN_WIDTH}x{MIN_HEIGHT})")]
    TooSmall { width: u32, height: u32 },
    /// PNG encoding failed.
    #[error("{}: cannot encode PNG: {message}", path.display())]
    Encode {
        path: std::path::PathBuf,
        message: String,
    },
    /// Writing the file failed.
    #[error(transparent)]
    Write(#[from] checkpoint::CheckpointError),
}

/// Smallest accepted width.
pub const MIN_WIDTH: u32 = 200;
/// Smallest accepted height.
pub const MIN_HEIGHT: u32 = 120;

/// Colour of the curve (matplotlib's default blue).
pub const CURVE: Rgb<u8> = Rgb([31, 119, 180]);
/// Colour of the axes and labels.
pub const AXIS: Rgb<u8> = Rgb([0, 0, 0]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);
const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);

const MARGIN_LEFT: u32 = 72;
const MARGIN_RIGHT: u32 = 16;
const MARGIN_TOP: u32 = 16;
const MARGIN_BOTTOM: u32 = 36;
const FONT_SCALE: i64 = 2;

/// The plot area in pixels and the data range it shows.
#[derive(Debug, Clone, Copy)]
struct Frame {
    left: i64,
    right: i64,
    top: i64,
    bottom: i64,
    x_min: f64,
    x_max: f64,
    y_min: f64,
    y_max: f64,
}

impl Frame {
    fn px(&self, x: f64) -> i64 {
        let t = (x - self.x_min) / (self.x_max - self.x_min);
        self.left + (t * (self.right - self.left) as f64).round() as i64
    }

    fn py(&self, y: f64) -> i64 {
        let t = (y - self.y_min) / (self.y_max - self.y_min);
        self.bottom - (t * (self.bottom - self.top) as f64).round() as i64
    }
}

/// Tick positions: multiples of 1, 2 or 5 × 10ᵏ inside `[lo, hi]`, about `target` of them.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let raw = (hi - lo) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude);
    let mut ticks = Vec::new();
    let mut k = (lo / step).ceil();
    while k * step <= hi + step * 1e-9 && ticks.len() < 50 {
        ticks.push(k * step);
        k += 1.0;
    }
    (ticks, step)
}

/// A tick label with as many decimals as the tick step needs.
fn tick_label(value: f64, step: f64) -> String {
    if value != 0.0 && (value.abs() >= 1e6 || value.abs() < 1e-4) {
        return format!("{value:.1e}");
    }
    let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    let text = format!("{value:.decimals$}");
    if text.starts_with('-') && text[1..].chars().all(|c| c == '0' || c == '.') {
        text[1..].to_string()
    } else {
        text
    }
}

/// 3×5 glyphs, one row per `u8` (bits 2..0 = left..right).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        '+' => [0b000, 0b010, 0b111, 0b010, 0b000],
        'e' => [0b000, 0b111, 0b111, 0b100, 0b111],
        _ => return None,
    })
}

/// Width in pixels of `text` in the built-in font.
fn text_width(text: &str) -> i64 {
    text.chars().count() as i64 * 4 * FONT_SCALE - FONT_SCALE
}

fn put(image: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < image.width() && (y as u32) < image.height() {
        image.put_pixel(x as u32, y as u32, color);
    }
}

fn draw_text(image: &mut RgbImage, text: &str, x: i64, y: i64, color: Rgb<u8>) {
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        let origin = x + i as i64 * 4 * FONT_SCALE;
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..3 {
                if bits & (0b100 >> col) != 0 {
                    for dy in 0..FONT_SCALE {
                        for dx in 0..FONT_SCALE {
                            put(
                                image,
                                origin + col * FONT_SCALE + dx,
                                y + row as i64 * FONT_SCALE + dy,
                                color,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Bresenham's line, `thickness` pixels wide (a square brush).
fn draw_line(
    image: &mut RgbImage,
    (x0, y0): (i64, i64),
    (x1, y1): (i64, i64),
    color: Rgb<u8>,
    thickness: i64,
) {
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let (mut x, mut y, mut err) = (x0, y0, dx + dy);
    loop {
        for ox in 0..thickness {
            for oy in 0..thickness {
                put(image, x + ox - thickness / 2, y + oy - thickness / 2, color);
            }
        }
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// The data range of the finite points, widened when degenerate and padded 5% vertically.
fn data_frame(points: &[(u64, f64)], width: u32, height: u32) -> Frame {
    let finite: Vec<(f64, f64)> = points
        .iter()
        .filter(|(_, y)| y.is_finite())
        .map(|&(x, y)| (x as f64, y))
        .collect();
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (0.0f64, 1.0f64, 0.0f64, 1.0f64);
    if !finite.is_empty() {
        x_min = finite.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        x_max = finite.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
        y_min = finite.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        y_max = finite.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    }
    if x_max <= x_min {
        x_min -= 1.0;
        x_max += 1.0;
    }
    if y_max <= y_min {
        let pad = if y_min == 0.0 { 1.0 } else { y_min.abs() * 0.1 };
        y_min -= pad;
        y_max += pad;
    }
    let pad = (y_max - y_min) * 0.05;
    Frame {
        left: MARGIN_LEFT as i64,
        right: (width - MARGIN_RIGHT) as i64 - 1,
        top: MARGIN_TOP as i64,
        bottom: (height - MARGIN_BOTTOM) as i64 - 1,
        x_min,
        x_max,
        y_min: y_min - pad,
        y_max: y_max + pad,
    }
}

/// Draws `points` (`(step, loss)`, in step order) into a `width × height` image.
pub fn render_loss_curve(
    points: &[(u64, f64)],
    width: u32,
    height: u32,
) -> Result<RgbImage, PlotError> {
    if width < MIN_WIDTH || height < MIN_HEIGHT {
        return Err(PlotError::TooSmall { width, height });
    }
    let mut image = RgbImage::from_pixel(width, height, BACKGROUND);
    let frame = data_frame(points, width, height);

    let (x_ticks, x_step) = nice_ticks(frame.x_min, frame.x_max, 6);
    // Steps are whole numbers: fractional ticks of a short run are left out.
    let x_step = x_step.max(1.0);
    for &t in x_ticks.iter().filter(|t| t.fract() == 0.0) {
        let px = frame.px(t);
        draw_line(&mut image, (px, frame.top), (px, frame.bottom), GRID, 1);
        draw_line(
            &mut image,
            (px, frame.bottom),
            (px, frame.bottom + 5),
            AXIS,
            1,
        );
        let label = tick_label(t, x_step);
        draw_text(
            &mut image,
            &label,
            px - text_width(&label) / 2,
            frame.bottom + 10,
            AXIS,
        );
    }
    let (y_ticks, y_step) = nice_ticks(frame.y_min, frame.y_max, 5);
    for &t in &y_ticks {
        let py = frame.py(t);
        draw_line(&mut image, (frame.left, py), (frame.right, py), GRID, 1);
        draw_line(&mut image, (frame.left - 5, py), (frame.left, py), AXIS, 1);
        let label = tick_label(t, y_step);
        draw_text(
            &mut image,
            &label,
            frame.left - 9 - text_width(&label),
            py - 5,
            AXIS,
        );
    }
    draw_line(
        &mut image,
        (frame.left, frame.top),
        (frame.left, frame.bottom),
        AXIS,
        1,
    );
    draw_line(
        &mut image,
        (frame.left, frame.bottom),
        (frame.right, frame.bottom),
        AXIS,
        1,
    );

    let mut previous: Option<(i64, i64)> = None;
    for &(step, loss) in points {
        if !loss.is_finite() {
            previous = None;
            continue;
        }
        let here = (frame.px(step as f64), frame.py(loss));
        match previous {
            Some(from) => draw_line(&mut image, from, here, CURVE, 2),
            None => draw_line(&mut image, here, here, CURVE, 3),
        }
        previous = Some(here);
    }
    Ok(image)
}

/// Renders and writes the loss curve to `path` as PNG, atomically.
pub fn write_loss_curve(
    path: &Path,
    points: &[(u64, f64)],
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    let image = render_loss_curve(points, width, height)?;
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|e| PlotError::Encode {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    checkpoint::write_file_atomic(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        let (ticks, step) = nice_ticks(0.0, 100.0, 5);
        assert_eq!(step, 20.0);
        assert_eq!(ticks, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let (ticks, step) = nice_ticks(1.23, 1.31, 4);
        assert_eq!(step, 0.02);
        assert_eq!(ticks.len(), 4);
        assert_eq!(tick_label(1.24, 0.02), "1.24");
        assert_eq!(tick_label(40.0, 20.0), "40");
    }

    #[test]
    fn degenerate_inputs_still_draw() {
        for points in [
            vec![],
            vec![(5, 1.0)],
            vec![(1, f64::NAN), (2, 2.0), (3, 2.0)],
        ] {
            let image = render_loss_curve(&points, 300, 200).unwrap();
            assert_eq!(image.dimensions(), (300, 200));
        }
        assert!(matches!(
            render_loss_curve(&[], 10, 10),
            Err(PlotError::TooSmall { .. })
        ));
    }
}
