//! Shared fixtures of the `data_*` tests: a real VILA dataset (JPEG files + `dataset.json`)
//! and a real registry YAML written into a temporary folder, and the tiny golden checkpoint.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use registry::{DatasetEntry, Registry};
use serde_json::{Value, json};

/// The tiny NVILA checkpoint of the workspace (`fixtures/golden/tiny-nvila`: real HF layout,
/// real Qwen2-style tokenizer, 56-px tiles).
pub fn tiny_checkpoint() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/tiny-nvila")
}

/// Writes a `w × h` JPEG with a pattern that depends on `seed`.
pub fn write_jpeg(path: &Path, w: u32, h: u32, seed: u32) {
    let img = RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            ((x * 7 + seed * 31) % 256) as u8,
            ((y * 5 + seed * 17) % 256) as u8,
            (((x + y) * 3 + seed * 11) % 256) as u8,
        ])
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    img.save(path).unwrap();
}

/// Image sizes used round-robin: 1×1 grid, a 2-tile wide grid + thumbnail, a tall one.
pub const SIZES: [(u32, u32); 4] = [(56, 56), (130, 60), (50, 150), (90, 70)];

/// A record with one image (`images/<name>_<i>.jpg`) and a one-turn conversation.
pub fn record(name: &str, i: usize) -> Value {
    json!({
        "id": format!("{name}-{i}"),
        "image": format!("images/{name}_{i}.jpg"),
        "conversations": [
            {"from": "human", "value": format!("<image>\nDescribe the scene number {i}.")},
            {"from": "gpt", "value": format!("A pedestrian crosses the road in scene {i} of {name}.")}
        ]
    })
}

/// Writes dataset `name` with `n` one-image records under `root/name/`; returns
/// `(dataset.json, media_dir)`.
pub fn write_dataset(root: &Path, name: &str, n: usize) -> (PathBuf, PathBuf) {
    let records: Vec<Value> = (0..n).map(|i| record(name, i)).collect();
    write_records(root, name, &records)
}

/// Writes `records` as dataset `name` and a JPEG for every image path they name.
pub fn write_records(root: &Path, name: &str, records: &[Value]) -> (PathBuf, PathBuf) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut k = 0u32;
    for r in records {
        for key in ["image", "images"] {
            let paths: Vec<&str> = match r.get(key) {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            for p in paths {
                let (w, h) = SIZES[k as usize % SIZES.len()];
                write_jpeg(&dir.join(p), w, h, k + name.len() as u32);
                k += 1;
            }
        }
    }
    let data = dir.join("dataset.json");
    std::fs::write(&data, serde_json::to_string_pretty(records).unwrap()).unwrap();
    (data, dir)
}

/// Writes a registry YAML with one `llava.data.LLaVADataset` entry per dataset.
pub fn write_registry(path: &Path, entries: &[(&str, PathBuf, PathBuf)]) {
    let mut registry = Registry::new();
    for (name, data, media) in entries {
        registry.upsert(name, DatasetEntry::llava(data.clone(), media.clone()));
    }
    registry.save(path).unwrap();
}

/// Three datasets `a` (5 records), `b` (3), `c` (4) and their registry; returns the registry.
pub fn three_datasets(root: &Path) -> PathBuf {
    let a = write_dataset(root, "a", 5);
    let b = write_dataset(root, "b", 3);
    let c = write_dataset(root, "c", 4);
    let reg = root.join("registry").join("default.yaml");
    write_registry(&reg, &[("a", a.0, a.1), ("b", b.0, b.1), ("c", c.0, c.1)]);
    reg
}
