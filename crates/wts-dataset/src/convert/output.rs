//! What lands on disk: `dataset.json` records (VILA `LLaVADataset` format, nvila.md §4),
//! `manifest.json` (one entry per image), `dataset_info.json`, and atomic file writing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::DatasetError;

/// One `dataset.json` record: `{"id", "image": "images/N.jpg" | [..], "conversations": [..]}`.
#[derive(Serialize)]
pub(crate) struct Record {
    pub id: String,
    pub image: Value,
    pub conversations: Vec<Turn>,
}

/// One conversation turn: `{"from": "human"|"gpt", "value": ...}`.
#[derive(Serialize)]
pub(crate) struct Turn {
    pub from: &'static str,
    pub value: String,
}

/// `manifest.json`.
#[derive(Serialize)]
pub(crate) struct Manifest {
    pub version: u32,
    pub dataset: String,
    pub images: Vec<ManifestImage>,
}

/// One image of the manifest: where its pixels came from and what was done to them.
#[derive(Serialize)]
pub(crate) struct ManifestImage {
    /// `images/N.jpg`, relative to the dataset folder.
    pub image: String,
    /// The work item: everything that determines the pixels (reuse compares it).
    pub key: String,
    /// Size of the JPEG file (a cheap check before reusing it).
    pub bytes: u64,
    pub source: &'static str,
    pub scenario: String,
    /// Video path relative to its dataset root.
    pub video: String,
    pub view: &'static str,
    pub phase: Option<&'static str>,
    pub phase_label: Option<String>,
    pub time_s: f64,
    pub frame_index: u64,
    /// `full` or `crop`.
    pub kind: &'static str,
    pub boxes: Vec<ManifestBox>,
    /// `[x, y, width, height]` of the crop in frame pixels.
    pub crop_region: Option<[u32; 4]>,
    pub notes: Vec<String>,
}

/// A box drawn (or available) on an image's frame.
#[derive(Serialize)]
pub(crate) struct ManifestBox {
    pub subject: &'static str,
    /// `[x_min, y_min, width, height]` in frame pixels, clipped to the frame.
    pub bbox: [f64; 4],
    pub from: &'static str,
    pub annotation_frame: u64,
}

/// `dataset_info.json`: hints for registering and training on the dataset.
#[derive(Serialize)]
pub(crate) struct DatasetInfo<'a> {
    pub name: &'a str,
    pub split: &'a str,
    pub samples: usize,
    pub images: usize,
    pub multi_image: bool,
    /// `resize` for multi-image data, `dynamic` otherwise (seed team notes: the hardware
    /// cannot train multi-image with `dynamic`).
    pub image_aspect_ratio: &'static str,
    pub frames: super::config::FramePick,
    pub views: super::config::ViewFilter,
    pub draw_boxes: bool,
    pub crop: bool,
    pub include_vqa: bool,
}

/// Writes `bytes` to `path` through a temporary sibling and a rename, so readers never see a
/// half-written file and an interrupted run leaves none behind under the final name.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DatasetError> {
    let tmp = temp_name(path);
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(DatasetError::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DatasetError::io(path, e)
    })
}

/// `.NAME.tmp-PID` next to `path` (hidden; ignored by discovery and cleaned on the next run).
fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Serialises `value` as pretty JSON (with a final newline) and writes it atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), DatasetError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| DatasetError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// `image path → (key, bytes)` from a previous run's manifest; empty if there is none or it
/// does not parse (then nothing is reused).
pub(crate) fn previous_images(manifest: &Path) -> HashMap<String, (String, u64)> {
    let Ok(text) = std::fs::read(manifest) else {
        return HashMap::new();
    };
    let Ok(v) = serde_json::from_slice::<Value>(&text) else {
        tracing::warn!(path = %manifest.display(), "previous manifest does not parse; nothing reused");
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for img in v
        .get("images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(path), Some(key), Some(bytes)) = (
            img.get("image").and_then(Value::as_str),
            img.get("key").and_then(Value::as_str),
            img.get("bytes").and_then(Value::as_u64),
        ) {
            out.insert(path.to_string(), (key.to_string(), bytes));
        }
    }
    out
}

/// Removes leftovers in `images/`: temporary files of interrupted runs and numbered images not
/// in `keep` (a previous run that had more images).
pub(crate) fn clean_images(
    dir: &Path,
    keep: &std::collections::HashSet<String>,
) -> Result<(), DatasetError> {
    let read = std::fs::read_dir(dir).map_err(|e| DatasetError::io(dir, e))?;
    for entry in read {
        let entry = entry.map_err(|e| DatasetError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_temp = name.starts_with('.') && name.contains(".tmp-");
        let stale_image = name.ends_with(".jpg") && !keep.contains(&name);
        if stale_temp || stale_image {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| DatasetError::io(&path, e))?;
        }
    }
    Ok(())
}
