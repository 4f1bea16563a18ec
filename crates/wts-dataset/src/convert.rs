//! The conversion: raw WTS / BDD_PC_5K trees → `<out>/<NAME>_dataset/` holding what VILA's
//! `LLaVADataset` loads (`dataset.json` + `images/N.jpg`; nvila.md §4), plus `manifest.json`
//! (one entry per image: source video, view, phase, time, frame index, boxes, crop),
//! `report.json` (every skipped or missing item with its file and reason) and
//! `dataset_info.json` (hints such as `image_aspect_ratio`).
//!
//! Steps: discover ([`crate::layout`]) → plan every sample and frame, checking annotations,
//! videos, times and boxes (`plan`) → render the images in parallel, reusing those a previous
//! run wrote for the identical work item (`render`) → write manifest, report, info and,
//! last, `dataset.json` (each through a temporary file and a rename).
//!
//! One sample per (view video, phase, frame, subject); the two subjects of a frame share its
//! image(s). On the test split samples have only the human turn and their ids
//! (`<scenario>/<video stem>/<phase digit>/<subject>/<k>`, VQA `<scenario>/<video stem>/vqa/
//! <phase digit|env>/<question id>`) carry what a submission needs (wts.md §2.2, §1.5).

mod config;
mod frames;
mod output;
mod place;
mod plan;
mod plan_vqa;
mod prompt;
mod render;
mod report;

pub use config::{ConvertConfig, FramePick, PromptTemplates, ViewFilter};
pub use report::{ConvertReport, SkippedItem};

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::annotations::{VqaFile, parse_main_views, parse_vqa};
use crate::error::DatasetError;
use crate::layout::{Scenario, Source, View, discover_bdd, discover_wts, shared_vqa_files};

use output::{DatasetInfo, Manifest, ManifestBox, ManifestImage, Record, Turn};
use plan::{Ctx, Plan, plan_scenario};
use render::{ImageKind, ImageSpec};

/// Converts the configured split. Bad scenarios are skipped and reported (or, with `strict`,
/// make this fail before any dataset file is written); errors are fatal only for a wrong
/// configuration, an unreadable root or main-view CSV, or a failure to write the output.
pub fn convert(cfg: &ConvertConfig) -> Result<ConvertReport, DatasetError> {
    cfg.validate()?;
    let main_views = cfg
        .main_view_csv
        .as_deref()
        .map(parse_main_views)
        .transpose()?;

    let mut scenarios: Vec<(Scenario, &Path)> = Vec::new();
    if let Some(root) = &cfg.wts_root {
        scenarios.extend(
            discover_wts(root, cfg.split)?
                .into_iter()
                .map(|s| (s, root.as_path())),
        );
    }
    if let Some(root) = &cfg.bdd_root {
        scenarios.extend(
            discover_bdd(root, cfg.split)?
                .into_iter()
                .map(|s| (s, root.as_path())),
        );
    }
    tracing::info!(scenarios = scenarios.len(), split = %cfg.split, "discovered");

    let (shared_vqa, mut shared_missing) = load_shared_vqa(cfg, &scenarios);
    let ctx = Ctx {
        cfg,
        main_views: main_views.as_ref(),
        shared_vqa: &shared_vqa,
    };
    let bar = render::progress(scenarios.len(), "planning");
    let parts: Vec<Plan> = scenarios
        .par_iter()
        .map(|(sc, root)| {
            let p = plan_scenario(&ctx, sc, root);
            bar.inc(1);
            p
        })
        .collect();
    bar.finish_and_clear();
    let mut plan = Plan::default();
    for p in parts {
        plan.append(p);
    }
    plan.missing.append(&mut shared_missing.1);
    plan.skipped.append(&mut shared_missing.0);
    plan.skipped.sort();
    plan.missing.sort();
    if cfg.strict && !plan.skipped.is_empty() {
        return Err(strict_error(cfg, &plan.skipped));
    }

    let (images, frame_images) = number_images(cfg, &plan);
    let ds_dir = cfg.dataset_dir();
    let images_dir = ds_dir.join("images");
    std::fs::create_dir_all(&images_dir).map_err(|e| DatasetError::io(&images_dir, e))?;
    let manifest_path = ds_dir.join("manifest.json");
    let dataset_path = ds_dir.join("dataset.json");

    // Reuse: same number, same work-item key, same file size as the previous manifest says.
    let previous = output::previous_images(&manifest_path);
    let mut sizes: BTreeMap<usize, u64> = BTreeMap::new();
    let mut todo = Vec::new();
    for (i, spec) in images.iter().enumerate() {
        let rel = image_rel(i);
        let reusable = previous.get(&rel).and_then(|(key, bytes)| {
            let on_disk = std::fs::metadata(ds_dir.join(&rel)).ok()?.len();
            (key == &spec.key && on_disk == *bytes).then_some(*bytes)
        });
        match reusable {
            Some(b) => {
                sizes.insert(i, b);
            }
            None => todo.push(i),
        }
    }
    let images_reused = sizes.len();
    if !todo.is_empty() {
        // Images are about to change: drop the old index files first so an interrupted run
        // never leaves a dataset.json / manifest describing other pixels.
        for p in [&dataset_path, &manifest_path] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(DatasetError::io(p, e));
                }
                _ => {}
            }
        }
    }
    let bar = render::progress(todo.len(), "images");
    let rendered = render::render(cfg, &plan, &images, &todo, &images_dir, &bar);
    bar.finish_and_clear();

    let mut failed: HashSet<usize> = HashSet::new();
    let mut failures: BTreeMap<(String, String), (PathBuf, usize)> = BTreeMap::new();
    let mut images_written = 0;
    for (i, r) in rendered {
        match r {
            Ok(b) => {
                sizes.insert(i, b);
                images_written += 1;
            }
            Err(e) => {
                failed.insert(i);
                let v = &plan.videos[plan.frames[images[i].frame].video];
                let item = SkippedItem::from_error(String::new(), v.frames.path(), &e);
                let slot = failures
                    .entry((format!("{}/{}", v.scenario, v.rel), item.reason))
                    .or_insert((item.file, 0));
                slot.1 += 1;
            }
        }
    }
    let mut skipped = plan.skipped.clone();
    for ((item, reason), (file, n)) in failures {
        skipped.push(SkippedItem {
            item: format!("{item} ({n} images)"),
            file,
            reason,
        });
    }
    skipped.sort();
    if cfg.strict && !skipped.is_empty() {
        return Err(strict_error(cfg, &skipped));
    }

    // Records whose images all exist.
    let mut records = Vec::with_capacity(plan.samples.len());
    for s in &plan.samples {
        let ids = &frame_images[s.frame];
        if ids.iter().any(|i| failed.contains(i)) {
            continue;
        }
        let image = match ids.as_slice() {
            [one] => Value::String(image_rel(*one)),
            many => Value::Array(many.iter().map(|i| Value::String(image_rel(*i))).collect()),
        };
        let mut conversations = vec![Turn {
            from: "human",
            value: prompt::with_images(ids.len(), &s.human),
        }];
        if let Some(answer) = &s.gpt {
            conversations.push(Turn {
                from: "gpt",
                value: answer.clone(),
            });
        }
        records.push(Record {
            id: s.id.clone(),
            image,
            conversations,
        });
    }

    let manifest = Manifest {
        version: 1,
        dataset: cfg.name.clone(),
        images: images
            .iter()
            .enumerate()
            .filter_map(|(i, spec)| sizes.get(&i).map(|b| manifest_image(&plan, i, spec, *b)))
            .collect(),
    };
    let keep: HashSet<String> = sizes.keys().map(|i| format!("{i}.jpg")).collect();
    output::write_json(&manifest_path, &manifest)?;
    output::write_json(
        &ds_dir.join("report.json"),
        &report::ReportFile {
            samples: records.len(),
            images: sizes.len(),
            skipped: &skipped,
            missing: &plan.missing,
        },
    )?;
    output::write_json(
        &ds_dir.join("dataset_info.json"),
        &DatasetInfo {
            name: &cfg.name,
            split: cfg.split.name(),
            samples: records.len(),
            images: sizes.len(),
            multi_image: cfg.multi_image,
            image_aspect_ratio: if cfg.multi_image { "resize" } else { "dynamic" },
            frames: cfg.frames,
            views: cfg.views,
            draw_boxes: cfg.draw_boxes,
            crop: cfg.wants_crop(),
            include_vqa: cfg.include_vqa,
        },
    )?;
    output::clean_images(&images_dir, &keep)?;
    output::write_json(&dataset_path, &records)?;
    tracing::info!(
        samples = records.len(),
        images_written,
        images_reused,
        skipped = skipped.len(),
        path = %dataset_path.display(),
        "dataset written"
    );
    Ok(ConvertReport {
        dataset_json: dataset_path,
        samples: records.len(),
        images_written,
        images_reused,
        skipped,
        missing: plan.missing,
    })
}

/// Parses the shared VQA files (`include_vqa` only): unreadable ones are skipped items, entries
/// naming no video of the discovered scenarios are missing items (e.g. BDD questions when only
/// a WTS root is given).
fn load_shared_vqa(
    cfg: &ConvertConfig,
    scenarios: &[(Scenario, &Path)],
) -> (Vec<VqaFile>, (Vec<SkippedItem>, Vec<SkippedItem>)) {
    let (mut files, mut skipped, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    if !cfg.include_vqa {
        return (files, (skipped, missing));
    }
    let mut paths = Vec::new();
    for root in [&cfg.wts_root, &cfg.bdd_root].into_iter().flatten() {
        match shared_vqa_files(root, cfg.split) {
            Ok(p) => paths.extend(p),
            Err(e) => skipped.push(SkippedItem::from_error("shared VQA files", root, &e)),
        }
    }
    paths.sort();
    paths.dedup();
    let known: HashSet<&str> = scenarios
        .iter()
        .flat_map(|(s, _)| s.videos.iter().map(|v| v.file_name.as_str()))
        .collect();
    for path in paths {
        match parse_vqa(&path) {
            Ok(f) => {
                for (i, e) in f.entries.iter().enumerate() {
                    if !e.videos.iter().any(|v| known.contains(v.as_str())) {
                        missing.push(SkippedItem {
                            item: format!("VQA entry {i} ({})", e.videos.join(", ")),
                            file: path.clone(),
                            reason: format!(
                                "{}: entry {i} names no video of the converted tree",
                                path.display()
                            ),
                        });
                    }
                }
                files.push(f);
            }
            Err(e) => skipped.push(SkippedItem::from_error("shared VQA file", &path, &e)),
        }
    }
    (files, (skipped, missing))
}

/// `images/N.jpg`.
fn image_rel(i: usize) -> String {
    format!("images/{i}.jpg")
}

/// The images of every frame, numbered in frame order: `[full]`, `[crop]` (crop only, when the
/// frame has a crop region) or `[full, crop]` (multi-image).
fn number_images(cfg: &ConvertConfig, plan: &Plan) -> (Vec<ImageSpec>, Vec<Vec<usize>>) {
    let mut images = Vec::new();
    let mut per_frame = Vec::with_capacity(plan.frames.len());
    for (f, frame) in plan.frames.iter().enumerate() {
        let kinds: &[ImageKind] = match (
            frame.crop_region.is_some(),
            cfg.multi_image,
            cfg.wants_crop(),
        ) {
            (true, true, _) => &[ImageKind::Full, ImageKind::Crop],
            (true, false, true) => &[ImageKind::Crop],
            _ => &[ImageKind::Full],
        };
        let mut ids = Vec::with_capacity(kinds.len());
        for &kind in kinds {
            ids.push(images.len());
            images.push(ImageSpec {
                frame: f,
                kind,
                key: image_key(cfg, plan, f, kind),
            });
        }
        per_frame.push(ids);
    }
    (images, per_frame)
}

/// Everything that determines an image's pixels, as canonical JSON.
fn image_key(cfg: &ConvertConfig, plan: &Plan, frame: usize, kind: ImageKind) -> String {
    #[derive(Serialize)]
    struct Key<'a> {
        frames_from: &'a Path,
        frame_index: u64,
        kind: &'static str,
        boxes: Vec<(&'static str, [f64; 4])>,
        colors: Option<([u8; 3], [u8; 3], u32)>,
        crop: Option<(u32, u32, u32, u32)>,
        quality: u8,
    }
    let f = &plan.frames[frame];
    let v = &plan.videos[f.video];
    let key = Key {
        frames_from: v.frames.path(),
        frame_index: f.frame_index,
        kind: kind.name(),
        boxes: if cfg.draw_boxes {
            f.boxes
                .iter()
                .map(|b| (b.subject.name(), [b.bbox.x, b.bbox.y, b.bbox.w, b.bbox.h]))
                .collect()
        } else {
            Vec::new()
        },
        colors: cfg.draw_boxes.then_some((
            cfg.pedestrian_color,
            cfg.vehicle_color,
            cfg.box_thickness,
        )),
        crop: if kind == ImageKind::Crop {
            f.crop_region
        } else {
            None
        },
        quality: cfg.jpeg_quality,
    };
    serde_json::to_string(&key).unwrap_or_default()
}

fn manifest_image(plan: &Plan, i: usize, spec: &ImageSpec, bytes: u64) -> ManifestImage {
    let f = &plan.frames[spec.frame];
    let v = &plan.videos[f.video];
    ManifestImage {
        image: image_rel(i),
        key: spec.key.clone(),
        bytes,
        source: match v.source {
            Source::Wts => "wts",
            Source::Bdd => "bdd",
        },
        scenario: v.scenario.clone(),
        video: v.rel.clone(),
        view: match v.view {
            View::Overhead => "overhead_view",
            View::Vehicle => "vehicle_view",
        },
        phase: f.phase.map(|p| p.name()),
        phase_label: f.phase.map(|p| p.digit().to_string()),
        time_s: f.time_s,
        frame_index: f.frame_index,
        kind: spec.kind.name(),
        boxes: f
            .boxes
            .iter()
            .map(|b| ManifestBox {
                subject: b.subject.name(),
                bbox: [b.bbox.x, b.bbox.y, b.bbox.w, b.bbox.h],
                from: b.from,
                annotation_frame: b.annotation_frame,
            })
            .collect(),
        crop_region: f.crop_region.map(|(x, y, w, h)| [x, y, w, h]),
        notes: f.notes.clone(),
    }
}

/// The `strict` failure: every item that would have been skipped.
fn strict_error(cfg: &ConvertConfig, skipped: &[SkippedItem]) -> DatasetError {
    let list: Vec<String> = skipped
        .iter()
        .map(|s| format!("  - {}: {}", s.item, s.reason))
        .collect();
    DatasetError::invalid(
        cfg.dataset_dir(),
        format!(
            "strict mode: {} item(s) would be skipped, nothing written:\n{}",
            skipped.len(),
            list.join("\n")
        ),
    )
}
