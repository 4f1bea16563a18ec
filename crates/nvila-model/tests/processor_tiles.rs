//! `dynamic` tiling and Pillow-bicubic resizing against PIL (fixtures from
//! `tests/fixtures/processor/gen.py`: PIL's tiles as lossless PNG strips, grids, candidate
//! orders from CPython 3.11).

use std::path::{Path, PathBuf};

use image::RgbImage;
use nvila_model::processor::image::normalize_into;
use nvila_model::processor::load_image;
use nvila_model::processor::resize::{PillowVersion, resize_bicubic_as};
use nvila_model::processor::tiling::{Grid, candidate_grids, dynamic_tiles};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(fixtures().join("golden.json")).expect("golden.json");
    serde_json::from_str(&text).expect("golden.json parses")
}

fn u32_of(v: &Value) -> u32 {
    v.as_u64().expect("number") as u32
}

/// Stack tiles vertically, as gen.py's `stack`.
fn stack(tiles: &[RgbImage]) -> RgbImage {
    let w = tiles[0].width();
    let mut raw = Vec::new();
    for t in tiles {
        assert_eq!(t.width(), w);
        raw.extend_from_slice(t.as_raw());
    }
    RgbImage::from_raw(w, raw.len() as u32 / (3 * w), raw).expect("stacked")
}

/// (max abs difference, mean abs difference) in 8-bit levels.
fn diff(a: &RgbImage, b: &RgbImage) -> (u8, f64) {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut max = 0u8;
    let mut sum = 0u64;
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        sum += u64::from(d);
    }
    (max, sum as f64 / a.as_raw().len() as f64)
}

#[test]
fn candidate_order_matches_cpython_set_order() {
    let g = golden();
    for case in g["candidates"].as_array().expect("candidates") {
        let (lo, hi) = (u32_of(&case["min"]), u32_of(&case["max"]));
        let expected: Vec<(u32, u32)> = case["order"]
            .as_array()
            .expect("order")
            .iter()
            .map(|p| (u32_of(&p[0]), u32_of(&p[1])))
            .collect();
        let got: Vec<(u32, u32)> = candidate_grids(lo, hi)
            .iter()
            .map(|g| (g.cols, g.rows))
            .collect();
        assert_eq!(got, expected, "min {lo} max {hi}");
    }
}

/// Compare against PIL for one Pillow version: Pillow 13 (the generator's, `key`) or Pillow 12
/// (`pillow12_key` where its pass order gives other pixels, else the same file).
fn check_tiles(pillow: PillowVersion) {
    let g = golden();
    let mut checked = 0;
    for case in g["tiling"].as_array().expect("tiling") {
        let base = case["key"].as_str().expect("key");
        let key = match (pillow, case["pillow12_key"].as_str()) {
            (PillowVersion::Pillow12, Some(k)) => k,
            _ => base,
        };
        let img = load_image(
            &fixtures()
                .join("images")
                .join(case["image"].as_str().expect("image")),
        )
        .expect("image");
        let size = u32_of(&case["image_size"]);
        let expected = image::open(fixtures().join("tiles").join(format!("{key}.png")))
            .expect("tile png")
            .to_rgb8();
        let tiles = if case.get("mode").and_then(Value::as_str) == Some("resize") {
            vec![resize_bicubic_as(&img, size, size, pillow)]
        } else {
            let (grid, tiles) = dynamic_tiles(
                &img,
                size,
                u32_of(&case["min_tiles"]),
                u32_of(&case["max_tiles"]),
                pillow,
            );
            let eg = &case["grid"];
            assert_eq!(
                grid,
                Grid {
                    cols: u32_of(&eg[0]),
                    rows: u32_of(&eg[1])
                },
                "{key}: grid"
            );
            tiles
        };
        assert_eq!(
            tiles.len() as u64,
            case["n_tiles"].as_u64().expect("n_tiles"),
            "{key}: tile count"
        );
        let got = stack(&tiles);
        let (max, mean) = diff(&got, &expected);
        assert_eq!(
            (max, mean),
            (0, 0.0),
            "{key}: differs from PIL (max {max}, mean {mean})"
        );

        if let (PillowVersion::Pillow13, Some(first)) = (
            pillow,
            case.get("last_tile_first_values").and_then(Value::as_array),
        ) {
            let mut norm = Vec::new();
            normalize_into(tiles.last().expect("a tile"), &mut norm);
            for (k, v) in first.iter().enumerate() {
                let v = v.as_f64().expect("float") as f32;
                assert_eq!(norm[k], v, "{key}: normalised value {k}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 16, "only {checked} tiling cases");
}

#[test]
fn tiles_and_grids_match_pillow13_exactly() {
    check_tiles(PillowVersion::Pillow13);
}

#[test]
fn tiles_and_grids_match_pillow12_pass_order_exactly() {
    check_tiles(PillowVersion::Pillow12);
}

#[test]
fn pillow_versions_differ_on_a_tall_thumbnail() {
    // 30×70 → 56×56 shrinks the height and grows the width: Pillow 13 goes vertical first.
    let img = load_image(&fixtures().join("images/tall30x70.png")).expect("image");
    let a = resize_bicubic_as(&img, 56, 56, PillowVersion::Pillow12);
    let b = resize_bicubic_as(&img, 56, 56, PillowVersion::Pillow13);
    assert_ne!(a, b);
    // Growing both sides is horizontal-first in both.
    let a = resize_bicubic_as(&img, 112, 280, PillowVersion::Pillow12);
    let b = resize_bicubic_as(&img, 112, 280, PillowVersion::Pillow13);
    assert_eq!(a, b);
}

#[test]
fn wide_image_beyond_twelve_to_one_gets_twelve_by_one() {
    let img = load_image(&fixtures().join("images/wide300x20.png")).expect("image");
    let (grid, tiles) = dynamic_tiles(&img, 56, 1, 12, PillowVersion::Pillow12);
    assert_eq!(grid, Grid { cols: 12, rows: 1 });
    assert_eq!(tiles.len(), 13);
    assert!(tiles.iter().all(|t| t.dimensions() == (56, 56)));
}
