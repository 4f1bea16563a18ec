//! Planning: from discovered scenarios and parsed annotations to an ordered list of videos,
//! frames (with their boxes and crop region) and samples. Everything that can be checked
//! without decoding pixels is checked here, so a bad scenario is reported before any file is
//! written (and `strict` can fail early).
//!
//! Order (and thus image numbering) is deterministic: scenarios sorted (WTS, then BDD), videos
//! sorted (overhead, then vehicle, by name), phases by label, frames by time, subjects
//! pedestrian then vehicle, VQA files sorted, questions in file order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::annotations::{
    BBoxFile, CaptionFile, MainViews, Phase, Subject, VqaFile, parse_bbox, parse_caption,
};
use crate::error::DatasetError;
use crate::geometry::BBox;
use crate::layout::{Scenario, Source, VideoEntry, View};
use crate::video::VideoInfo;

use super::config::ConvertConfig;
use super::frames::Frames;
use super::place::{build_frame, pick_times};
use super::prompt;
use super::report::SkippedItem;

/// WTS videos are 30 fps and their annotation frame numbers count at 30 fps (wts.md §1.1, §5).
const WTS_ANNOTATION_FPS: f64 = 30.0;

/// A video used by the dataset.
#[derive(Clone, Debug)]
pub(crate) struct PlannedVideo {
    pub source: Source,
    pub scenario: String,
    pub view: View,
    /// Path relative to its dataset root (portable in the manifest).
    pub rel: String,
    pub frames: Frames,
    pub info: VideoInfo,
}

/// A box placed on a frame, clipped to it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlacedBox {
    pub subject: Subject,
    pub bbox: BBox,
    /// `bbox_generated` or `bbox_annotated`.
    pub from: &'static str,
    /// The annotation's `image_id`.
    pub annotation_frame: u64,
}

/// One frame of one video, and what is drawn / cropped on it.
#[derive(Clone, Debug)]
pub(crate) struct FrameItem {
    pub video: usize,
    /// `None` for a scenario-level (environment) VQA frame.
    pub phase: Option<Phase>,
    pub time_s: f64,
    pub frame_index: u64,
    pub boxes: Vec<PlacedBox>,
    /// `(x, y, width, height)` of the crop, when one is wanted and the frame has a box.
    pub crop_region: Option<(u32, u32, u32, u32)>,
    pub notes: Vec<String>,
}

/// One dataset record before image numbering.
#[derive(Clone, Debug)]
pub(crate) struct SampleItem {
    pub id: String,
    pub frame: usize,
    /// Human text without `<image>` tokens.
    pub human: String,
    /// `None` on the test split.
    pub gpt: Option<String>,
}

/// The whole plan.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub videos: Vec<PlannedVideo>,
    pub frames: Vec<FrameItem>,
    pub samples: Vec<SampleItem>,
    pub skipped: Vec<SkippedItem>,
    pub missing: Vec<SkippedItem>,
}

impl Plan {
    /// Appends a scenario's plan, shifting its local indices.
    pub(crate) fn append(&mut self, mut other: Plan) {
        let (v0, f0) = (self.videos.len(), self.frames.len());
        for f in &mut other.frames {
            f.video += v0;
        }
        for s in &mut other.samples {
            s.frame += f0;
        }
        self.videos.append(&mut other.videos);
        self.frames.append(&mut other.frames);
        self.samples.append(&mut other.samples);
        self.skipped.append(&mut other.skipped);
        self.missing.append(&mut other.missing);
    }
}

/// Shared inputs of scenario planning.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a ConvertConfig,
    pub main_views: Option<&'a MainViews>,
    /// VQA files not tied to one scenario (the public test file).
    pub shared_vqa: &'a [VqaFile],
}

/// Parsed per-video inputs.
pub(crate) struct VideoCtx {
    pub idx: usize,
    pub entry: VideoEntry,
    pub info: VideoInfo,
    /// Frame rate of the annotation frame numbers (WTS 30, BDD the caption's `fps`).
    pub ann_fps: f64,
    /// Parsed `bbox_annotated` files, pedestrian then vehicle.
    pub annotated: [Option<BBoxFile>; 2],
    /// Parsed `bbox_generated` files, pedestrian then vehicle.
    pub generated: [Option<BBoxFile>; 2],
}

pub(crate) fn subject_slot(s: Subject) -> usize {
    match s {
        Subject::Pedestrian => 0,
        Subject::Vehicle => 1,
    }
}

/// Plans one scenario. Never fails: problems become skipped / missing items.
pub(crate) fn plan_scenario(ctx: &Ctx<'_>, sc: &Scenario, root: &Path) -> Plan {
    let cfg = ctx.cfg;
    let mut p = Plan::default();
    for m in &sc.missing {
        let item = SkippedItem {
            item: format!("{}: {}", sc.name, m.what),
            file: m.path.clone(),
            reason: format!("{}: not found", m.path.display()),
        };
        if m.what.contains("bbox") {
            // Optional: frames just get no box (noted per frame in the manifest).
            p.missing.push(item);
        } else if !m.what.contains("caption") {
            // A captioned scenario without its video(s): those samples cannot be made.
            // (A missing caption is reported below, once per video it leaves out.)
            p.skipped.push(item);
        }
    }

    // Captions per view (their times are relative to that view's videos: wts.md §1.3).
    let wanted: Vec<&VideoEntry> = sc
        .videos
        .iter()
        .filter(|v| sc.source == Source::Bdd || cfg.views.accepts(v.view))
        .filter(|v| main_view_ok(ctx, sc, v))
        .collect();
    let mut captions: BTreeMap<View, CaptionFile> = BTreeMap::new();
    for view in [View::Overhead, View::Vehicle] {
        let videos: Vec<&&VideoEntry> = wanted.iter().filter(|v| v.view == view).collect();
        if videos.is_empty() {
            continue;
        }
        let result = match sc.caption_for(view) {
            Some(path) => parse_caption(path, cfg.split.has_answers()),
            None => Err(DatasetError::invalid(
                sc.missing
                    .iter()
                    .find(|m| {
                        m.what == format!("{} caption", view.dir_name()) || m.what == "caption"
                    })
                    .map(|m| m.path.clone())
                    .unwrap_or_else(|| PathBuf::from(&sc.name)),
                format!("no {} caption file", view.dir_name()),
            )),
        };
        match result {
            Ok(c) => {
                for name in &c.videos {
                    if !sc.videos.iter().any(|v| &v.file_name == name) {
                        p.skipped.push(SkippedItem {
                            item: format!("{}/{name}", sc.name),
                            file: c.path.clone(),
                            reason: format!(
                                "{}: lists video {name}, which is not in the {} folder",
                                c.path.display(),
                                view.dir_name()
                            ),
                        });
                    }
                }
                captions.insert(view, c);
            }
            Err(e) => {
                for v in videos {
                    p.skipped.push(SkippedItem::from_error(
                        format!("{}/{}", sc.name, v.file_name),
                        &v.path,
                        &e,
                    ));
                }
            }
        }
    }

    let mut vctxs = Vec::new();
    for entry in wanted {
        let Some(cap) = captions.get(&entry.view) else {
            continue;
        };
        match video_ctx(ctx, sc, entry, cap, root, p.videos.len()) {
            Ok((planned, vc)) => {
                p.videos.push(planned);
                vctxs.push(vc);
            }
            Err(e) => p.skipped.push(SkippedItem::from_error(
                format!("{}/{}", sc.name, entry.file_name),
                &entry.path,
                &e,
            )),
        }
    }

    // Caption samples: one per (video, phase, frame, subject).
    for vc in &vctxs {
        let Some(cap) = captions.get(&vc.entry.view) else {
            continue;
        };
        for ph in &cap.phases {
            let item = format!(
                "{}/{} phase {}",
                sc.name,
                vc.entry.file_name,
                ph.phase.digit()
            );
            let annotated_first = [Subject::Pedestrian, Subject::Vehicle]
                .iter()
                .find_map(|s| {
                    vc.annotated[subject_slot(*s)]
                        .as_ref()
                        .and_then(|f| f.first_of_phase(ph.phase))
                        .map(|e| e.frame as f64 / vc.ann_fps)
                });
            let (times, note) = pick_times(cfg.frames, ph.start_s, ph.end_s, annotated_first);
            let frames: Result<Vec<FrameItem>, DatasetError> = times
                .iter()
                .map(|&t| build_frame(cfg, vc, Some(ph.phase), t, note.as_deref(), &cap.path))
                .collect();
            let frames = match frames {
                Ok(f) => f,
                Err(e) => {
                    p.skipped
                        .push(SkippedItem::from_error(item, cap.path.clone(), &e));
                    continue;
                }
            };
            for (k, frame) in frames.into_iter().enumerate() {
                let has_crop = frame.crop_region.is_some();
                let fi = p.frames.len();
                p.frames.push(frame);
                for subject in Subject::ALL {
                    let template = if cfg.multi_image && has_crop {
                        &cfg.prompts.caption_multi
                    } else {
                        &cfg.prompts.caption
                    };
                    p.samples.push(SampleItem {
                        id: format!(
                            "{}/{}/{}/{}/{k}",
                            sc.name,
                            vc.entry.stem,
                            ph.phase.digit(),
                            subject.name()
                        ),
                        frame: fi,
                        human: prompt::fill(
                            template,
                            &[("phase", ph.phase.name()), ("subject", subject.name())],
                        ),
                        gpt: ph.caption(subject).map(str::to_string),
                    });
                }
            }
        }
    }

    if cfg.include_vqa {
        super::plan_vqa::plan_vqa(ctx, sc, &vctxs, &mut p);
    }
    p
}

/// With a main-view CSV, an overhead video of a listed scenario is used only if listed
/// (CityLLaVA keeps only the reference views; wts.md §3). Unlisted scenarios keep all views.
fn main_view_ok(ctx: &Ctx<'_>, sc: &Scenario, v: &VideoEntry) -> bool {
    match ctx.main_views {
        Some(mv)
            if sc.source == Source::Wts
                && v.view == View::Overhead
                && mv.has_scenario(&sc.name) =>
        {
            let ok = mv.is_main(&sc.name, &v.file_name);
            if !ok {
                tracing::debug!(scenario = %sc.name, video = %v.file_name, "not a main view; left out");
            }
            ok
        }
        _ => true,
    }
}

/// Probes the video (or frame folder) and parses its bbox files.
fn video_ctx(
    ctx: &Ctx<'_>,
    sc: &Scenario,
    entry: &VideoEntry,
    cap: &CaptionFile,
    root: &Path,
    idx: usize,
) -> Result<(PlannedVideo, VideoCtx), DatasetError> {
    // Annotation fps: WTS 30; BDD from the caption's `fps` (wts.md §1.3, §5).
    let ann_fps = match sc.source {
        Source::Wts => WTS_ANNOTATION_FPS,
        Source::Bdd => cap.fps.ok_or_else(|| {
            DatasetError::invalid(
                &cap.path,
                "BDD caption file has no `fps` (needed to place boxes)",
            )
        })?,
    };
    let frames = match &ctx.cfg.frame_folders {
        Some(dir) => Frames::Folder {
            dir: dir.join(&entry.stem),
            fps: ann_fps,
        },
        None => Frames::Video(entry.path.clone()),
    };
    let info = frames.probe()?;
    let parse = |p: Option<&Path>| p.map(parse_bbox).transpose();
    let annotated = [
        parse(entry.bbox_annotated.get(Subject::Pedestrian))?,
        parse(entry.bbox_annotated.get(Subject::Vehicle))?,
    ];
    let generated = [
        parse(entry.bbox_generated.get(Subject::Pedestrian))?,
        parse(entry.bbox_generated.get(Subject::Vehicle))?,
    ];
    let rel = entry
        .path
        .strip_prefix(root)
        .unwrap_or(&entry.path)
        .to_string_lossy()
        .replace('\\', "/");
    let planned = PlannedVideo {
        source: sc.source,
        scenario: sc.name.clone(),
        view: entry.view,
        rel,
        frames,
        info: info.clone(),
    };
    Ok((
        planned,
        VideoCtx {
            idx,
            entry: entry.clone(),
            info,
            ann_fps,
            annotated,
            generated,
        },
    ))
}
