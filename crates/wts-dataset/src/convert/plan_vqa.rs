//! VQA planning (2025 data; wts.md §1.5): multiple-choice samples on the frames of the caption
//! plan, or on frames placed from the VQA file's own phase times.

use std::path::Path;

use crate::annotations::{Phase, VqaEntry, VqaQuestion, parse_vqa};
use crate::error::DatasetError;
use crate::layout::{Scenario, View, VqaRole};

use super::config::ConvertConfig;
use super::place::{build_frame, pick_times};
use super::plan::{Ctx, Plan, SampleItem, VideoCtx};
use super::prompt;
use super::report::SkippedItem;

/// VQA samples (2025). Phase questions reuse the caption frame of the same (video, phase);
/// otherwise a frame is placed from the VQA phase's own times. Environment questions use the
/// video's first frame already planned, else its middle. Entries of shared files (the public
/// test file covering every scenario, wts.md §1.5) apply to the scenario whose videos they name.
pub(crate) fn plan_vqa(ctx: &Ctx<'_>, sc: &Scenario, vctxs: &[VideoCtx], p: &mut Plan) {
    let cfg = ctx.cfg;
    for vref in &sc.vqa {
        let file = match parse_vqa(&vref.path) {
            Ok(f) => f,
            Err(e) => {
                p.skipped.push(SkippedItem::from_error(
                    format!("{} VQA", sc.name),
                    &vref.path,
                    &e,
                ));
                continue;
            }
        };
        let view = match vref.role {
            VqaRole::Vehicle => Some(View::Vehicle),
            VqaRole::Overhead => Some(View::Overhead),
            VqaRole::Environment => None,
        };
        for (ei, entry) in file.entries.iter().enumerate() {
            let targets = vqa_targets(vctxs, view, &entry.videos);
            plan_vqa_entry(cfg, sc, &targets, p, &vref.path, ei, entry);
        }
    }
    for file in ctx.shared_vqa {
        for (ei, entry) in file.entries.iter().enumerate() {
            let mut targets: Vec<&VideoCtx> = vctxs
                .iter()
                .filter(|v| entry.videos.contains(&v.entry.file_name))
                .collect();
            if !cfg.split.has_answers() {
                // One sample per test question id: the submission takes one answer each.
                targets.truncate(1);
            }
            plan_vqa_entry(cfg, sc, &targets, p, &file.path, ei, entry);
        }
    }
}

/// The samples of one VQA entry on each of `targets`.
fn plan_vqa_entry(
    cfg: &ConvertConfig,
    sc: &Scenario,
    targets: &[&VideoCtx],
    p: &mut Plan,
    path: &Path,
    ei: usize,
    entry: &VqaEntry,
) {
    for vc in targets {
        let base = format!("{}/{}/vqa", sc.name, vc.entry.stem);
        if !entry.environment.is_empty() {
            let frame = existing_frame(p, vc.idx, None).map(Ok).unwrap_or_else(|| {
                build_frame(cfg, vc, None, vc.info.duration_s / 2.0, None, path).map(|f| {
                    p.frames.push(f);
                    p.frames.len() - 1
                })
            });
            let q = Questions {
                file: path,
                base: &base,
                tag: "env",
                entry_index: ei,
                phase: None,
            };
            add_questions(cfg, p, &q, &entry.environment, frame);
        }
        for ph in &entry.phases {
            let frame = existing_frame(p, vc.idx, Some(ph.phase))
                .map(Ok)
                .unwrap_or_else(|| {
                    let (Some(s), Some(e)) = (ph.start_s, ph.end_s) else {
                        return Err(DatasetError::invalid(
                            path,
                            format!("phase {} has no caption frame and no times", ph.phase),
                        ));
                    };
                    let first = vc.annotated.iter().flatten().find_map(|f| {
                        f.first_of_phase(ph.phase)
                            .map(|x| x.frame as f64 / vc.ann_fps)
                    });
                    let (times, note) = pick_times(cfg.frames, s, e, first);
                    build_frame(cfg, vc, Some(ph.phase), times[0], note.as_deref(), path).map(|f| {
                        p.frames.push(f);
                        p.frames.len() - 1
                    })
                });
            let tag = ph.phase.digit().to_string();
            let q = Questions {
                file: path,
                base: &base,
                tag: &tag,
                entry_index: ei,
                phase: Some(ph.phase),
            };
            add_questions(cfg, p, &q, &ph.questions, frame);
        }
    }
}

/// The planned videos a VQA entry is about: those of `view` (any view for environment files)
/// named in the entry, else all of them.
fn vqa_targets<'a>(
    vctxs: &'a [VideoCtx],
    view: Option<View>,
    names: &[String],
) -> Vec<&'a VideoCtx> {
    let of_view: Vec<&VideoCtx> = vctxs
        .iter()
        .filter(|v| view.is_none_or(|w| v.entry.view == w))
        .collect();
    let named: Vec<&VideoCtx> = of_view
        .iter()
        .copied()
        .filter(|v| names.contains(&v.entry.file_name))
        .collect();
    if named.is_empty() { of_view } else { named }
}

/// The first frame already planned for `video` (and `phase`, when given).
fn existing_frame(p: &Plan, video: usize, phase: Option<Phase>) -> Option<usize> {
    p.frames
        .iter()
        .position(|f| f.video == video && (phase.is_none() || f.phase == phase))
}

/// Where a group of questions comes from.
struct Questions<'a> {
    file: &'a Path,
    /// `<scenario>/<video stem>/vqa`.
    base: &'a str,
    /// `env` or the phase digit.
    tag: &'a str,
    entry_index: usize,
    phase: Option<Phase>,
}

fn add_questions(
    cfg: &ConvertConfig,
    p: &mut Plan,
    q: &Questions<'_>,
    questions: &[VqaQuestion],
    frame: Result<usize, DatasetError>,
) {
    let Questions {
        file,
        base,
        tag,
        entry_index,
        phase,
    } = *q;
    let frame = match frame {
        Ok(f) => f,
        Err(e) => {
            p.skipped
                .push(SkippedItem::from_error(format!("{base}/{tag}"), file, &e));
            return;
        }
    };
    for (qi, q) in questions.iter().enumerate() {
        // Test questions carry the UUID the submission needs (wts.md §1.5).
        let qid =
            q.id.clone()
                .unwrap_or_else(|| format!("q{entry_index}-{qi}"));
        let id = format!("{base}/{tag}/{qid}");
        let gpt = if cfg.split.has_answers() {
            match prompt::answer(q) {
                Some(a) => Some(a),
                None => {
                    p.skipped.push(SkippedItem {
                        item: id,
                        file: file.to_path_buf(),
                        reason: format!(
                            "{}: question {qid:?} has no `correct` answer",
                            file.display()
                        ),
                    });
                    continue;
                }
            }
        } else {
            None
        };
        let options = prompt::options(q);
        let template = match phase {
            Some(_) => &cfg.prompts.vqa_phase,
            None => &cfg.prompts.vqa_environment,
        };
        let human = prompt::fill(
            template,
            &[
                ("phase", phase.map_or("", Phase::name)),
                ("question", &q.question),
                ("options", &options),
            ],
        );
        p.samples.push(SampleItem {
            id,
            frame,
            human,
            gpt,
        });
    }
}
