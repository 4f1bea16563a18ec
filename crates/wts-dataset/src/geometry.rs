//! Pixel boxes as the WTS / BDD bbox JSON stores them.

use serde::{Deserialize, Serialize};

/// An axis-aligned box in source-video pixels: `[x_min, y_min, width, height]` (COCO order, as
/// in `bbox_annotated` / `bbox_generated`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl BBox {
    /// Builds a box from the JSON array form `[x_min, y_min, width, height]`.
    pub fn from_xywh(v: [f64; 4]) -> Self {
        BBox {
            x: v[0],
            y: v[1],
            w: v[2],
            h: v[3],
        }
    }

    /// `x_min + width`.
    pub fn x_max(&self) -> f64 {
        self.x + self.w
    }

    /// `y_min + height`.
    pub fn y_max(&self) -> f64 {
        self.y + self.h
    }

    /// Area in square pixels.
    pub fn area(&self) -> f64 {
        self.w.max(0.0) * self.h.max(0.0)
    }
}
