//! Placing a frame: phase times → the times to sample (per [`FramePick`]) → the file's frame
//! index → the boxes on that frame (generated track or annotated first frame, wts.md §1.4 / §5)
//! → the crop region.

use std::path::Path;

use crate::annotations::{Phase, Subject};
use crate::error::DatasetError;
use crate::geometry::BBox;
use crate::video::frame_index_at;

use super::config::{ConvertConfig, FramePick};
use super::frames::TIME_TOLERANCE_S;
use super::plan::{FrameItem, PlacedBox, VideoCtx, subject_slot};

/// The times (seconds in this view's file) to take frames at, and a note when the pick had to
/// fall back.
pub(crate) fn pick_times(
    pick: FramePick,
    start: f64,
    end: f64,
    annotated_first: Option<f64>,
) -> (Vec<f64>, Option<String>) {
    match pick {
        FramePick::Start => (vec![start], None),
        FramePick::Middle => (vec![(start + end) / 2.0], None),
        FramePick::End => (vec![end], None),
        FramePick::Evenly(n) => {
            let n = n.max(1);
            let times = (0..n)
                .map(|i| start + (f64::from(i) + 0.5) / f64::from(n) * (end - start))
                .collect();
            (times, None)
        }
        FramePick::BboxAnnotated => match annotated_first {
            Some(t) => (vec![t], None),
            None => (
                vec![start],
                Some("no bbox_annotated box for this phase: frame taken at start_time".into()),
            ),
        },
    }
}

/// Places a frame at time `t`: checks the time, finds and clips the boxes, computes the crop.
pub(crate) fn build_frame(
    cfg: &ConvertConfig,
    vc: &VideoCtx,
    phase: Option<Phase>,
    t: f64,
    note: Option<&str>,
    time_from: &Path,
) -> Result<FrameItem, DatasetError> {
    let info = &vc.info;
    if !t.is_finite() || t < 0.0 || t > info.duration_s + TIME_TOLERANCE_S {
        // The time comes from `time_from` (caption or VQA file): that file is at fault.
        return Err(DatasetError::invalid(
            time_from,
            format!(
                "phase {} time {t:.3} s is outside the video {} (duration {:.3} s)",
                phase.map_or("-", Phase::name),
                vc.entry.file_name,
                info.duration_s
            ),
        ));
    }
    let n = frame_index_at(info, t);
    let mut notes: Vec<String> = note.map(str::to_string).into_iter().collect();
    let mut boxes = Vec::new();
    for subject in Subject::ALL {
        let Some(b) = find_box(vc, subject, phase, n) else {
            if vc.entry.bbox_annotated.get(subject).is_some()
                || vc.entry.bbox_generated.get(subject).is_some()
            {
                notes.push(format!("no {subject} box for this frame"));
            } else {
                notes.push(format!("no {subject} bbox file for this video"));
            }
            continue;
        };
        match crate::draw::clip_to_frame(&b.bbox, info.width, info.height) {
            Some(clipped) => boxes.push(PlacedBox { bbox: clipped, ..b }),
            None => {
                let file = match b.from {
                    "bbox_generated" => vc.entry.bbox_generated.get(subject),
                    _ => vc.entry.bbox_annotated.get(subject),
                }
                .unwrap_or(&vc.entry.path)
                .to_path_buf();
                return Err(DatasetError::invalid(
                    file,
                    format!(
                        "{subject} box {:?} (image_id {}) lies outside the {}x{} frame",
                        [b.bbox.x, b.bbox.y, b.bbox.w, b.bbox.h],
                        b.annotation_frame,
                        info.width,
                        info.height
                    ),
                ));
            }
        }
    }
    let crop_region = if cfg.wants_crop() && !boxes.is_empty() {
        let bs: Vec<BBox> = boxes.iter().map(|b| b.bbox).collect();
        let r = crate::draw::crop_region(&bs, info.width, info.height, cfg.crop_scale);
        if r.is_none() {
            notes.push("crop region is empty".into());
        }
        r
    } else {
        if cfg.wants_crop() {
            notes.push("no box: no crop".into());
        }
        None
    };
    Ok(FrameItem {
        video: vc.idx,
        phase,
        time_s: t,
        frame_index: n,
        boxes,
        crop_region,
        notes,
    })
}

/// The box of `subject` on file frame `n`: from `bbox_generated` (an annotation frame that
/// maps to `n`), else from `bbox_annotated` if the phase's first annotated frame maps to `n`.
/// Annotation frames are turned into seconds with the annotation fps and then into the file's
/// frame index (wts.md §5 "Safest rule").
fn find_box(vc: &VideoCtx, subject: Subject, phase: Option<Phase>, n: u64) -> Option<PlacedBox> {
    let to_file = |k: u64| frame_index_at(&vc.info, k as f64 / vc.ann_fps);
    if let Some(g) = &vc.generated[subject_slot(subject)] {
        let centre = (n as f64 + 0.5) / vc.info.fps * vc.ann_fps;
        let k0 = centre.floor().max(0.0) as u64;
        // Annotation frames near the centre of file frame `n`; at 59.94 fps annotations two of
        // them map to one 29.97 fps frame: take the first.
        for k in k0.saturating_sub(2)..=k0 + 2 {
            if to_file(k) == n
                && let Some(e) = g.at_frame(k)
            {
                return Some(PlacedBox {
                    subject,
                    bbox: e.bbox,
                    from: "bbox_generated",
                    annotation_frame: k,
                });
            }
        }
    }
    let phase = phase?;
    let a = vc.annotated[subject_slot(subject)].as_ref()?;
    let e = a.first_of_phase(phase)?;
    (to_file(e.frame) == n).then_some(PlacedBox {
        subject,
        bbox: e.bbox,
        from: "bbox_annotated",
        annotation_frame: e.frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_picks() {
        let (s, e) = (2.0, 4.0);
        assert_eq!(pick_times(FramePick::Start, s, e, None).0, [2.0]);
        assert_eq!(pick_times(FramePick::Middle, s, e, None).0, [3.0]);
        assert_eq!(pick_times(FramePick::End, s, e, None).0, [4.0]);
        assert_eq!(
            pick_times(FramePick::Evenly(4), s, e, None).0,
            [2.25, 2.75, 3.25, 3.75]
        );
        assert_eq!(
            pick_times(FramePick::BboxAnnotated, s, e, Some(2.1)),
            (vec![2.1], None)
        );
        let (t, note) = pick_times(FramePick::BboxAnnotated, s, e, None);
        assert_eq!(t, [2.0]);
        assert!(note.unwrap().contains("start_time"));
    }
}
