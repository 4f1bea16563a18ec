//! Rendering: decode the planned frames, draw boxes, crop, encode JPEG, write atomically.
//! Parallel with rayon over videos (one ffmpeg process per group of nearby frames is much
//! cheaper than one per frame; `video::frames_at`) and over the images of a video.

use std::collections::BTreeMap;
use std::path::Path;

use image::{Rgb, RgbImage};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::annotations::Subject;
use crate::error::DatasetError;

use super::config::ConvertConfig;
use super::output::write_atomic;
use super::plan::Plan;

/// Full frame or crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ImageKind {
    Full,
    Crop,
}

impl ImageKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ImageKind::Full => "full",
            ImageKind::Crop => "crop",
        }
    }
}

/// One image to produce: `images/<number>.jpg`.
#[derive(Clone, Debug)]
pub(crate) struct ImageSpec {
    pub frame: usize,
    pub kind: ImageKind,
    pub key: String,
}

/// A progress bar on stderr; indicatif hides it when stderr is not a terminal.
pub(crate) fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed_precise}, eta {eta}]")
    {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

/// Renders `todo` (indices into `images`) into `images_dir`. Returns, per rendered image
/// index, the file size or the error that prevented it.
pub(crate) fn render(
    cfg: &ConvertConfig,
    plan: &Plan,
    images: &[ImageSpec],
    todo: &[usize],
    images_dir: &Path,
    bar: &ProgressBar,
) -> BTreeMap<usize, Result<u64, DatasetError>> {
    // Group by video, then by frame.
    let mut by_video: BTreeMap<usize, BTreeMap<usize, Vec<usize>>> = BTreeMap::new();
    for &i in todo {
        let f = images[i].frame;
        by_video
            .entry(plan.frames[f].video)
            .or_default()
            .entry(f)
            .or_default()
            .push(i);
    }
    let groups: Vec<(usize, BTreeMap<usize, Vec<usize>>)> = by_video.into_iter().collect();
    groups
        .par_iter()
        .flat_map_iter(|(video, frames)| {
            let v = &plan.videos[*video];
            let frame_ids: Vec<usize> = frames.keys().copied().collect();
            let times: Vec<f64> = frame_ids.iter().map(|&f| plan.frames[f].time_s).collect();
            let decoded = v.frames.frames_at(&v.info, &times);
            let out: Vec<(usize, Result<u64, DatasetError>)> = match decoded {
                Err(e) => {
                    let msg = e.to_string();
                    let path = v.frames.path().to_path_buf();
                    frames
                        .values()
                        .flatten()
                        .map(|&i| {
                            bar.inc(1);
                            (
                                i,
                                Err(DatasetError::Video {
                                    path: path.clone(),
                                    message: msg.clone(),
                                }),
                            )
                        })
                        .collect()
                }
                Ok(decoded) => frame_ids
                    .par_iter()
                    .zip(decoded.into_par_iter())
                    .flat_map_iter(|(f, img)| {
                        let drawn = draw(cfg, plan, *f, img);
                        frames[f]
                            .iter()
                            .map(|&i| {
                                let r = encode_one(cfg, plan, &images[i], &drawn, images_dir, i);
                                bar.inc(1);
                                (i, r)
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect(),
            };
            out
        })
        .collect()
}

/// The frame with its boxes drawn (CityLLaVA: pedestrian green, vehicle blue, thickness 4).
fn draw(cfg: &ConvertConfig, plan: &Plan, frame: usize, mut img: RgbImage) -> RgbImage {
    if cfg.draw_boxes {
        for b in &plan.frames[frame].boxes {
            let color = match b.subject {
                Subject::Pedestrian => cfg.pedestrian_color,
                Subject::Vehicle => cfg.vehicle_color,
            };
            crate::draw::draw_box(&mut img, &b.bbox, Rgb(color), cfg.box_thickness);
        }
    }
    img
}

fn encode_one(
    cfg: &ConvertConfig,
    plan: &Plan,
    spec: &ImageSpec,
    drawn: &RgbImage,
    images_dir: &Path,
    number: usize,
) -> Result<u64, DatasetError> {
    let path = images_dir.join(format!("{number}.jpg"));
    let bytes = match (spec.kind, plan.frames[spec.frame].crop_region) {
        (ImageKind::Crop, Some(region)) => {
            crate::draw::encode_jpeg(&crate::draw::crop(drawn, region), cfg.jpeg_quality)?
        }
        _ => crate::draw::encode_jpeg(drawn, cfg.jpeg_quality)?,
    };
    write_atomic(&path, &bytes)?;
    Ok(bytes.len() as u64)
}
