//! BDD_PC_5K discovery: `videos/<split>/videoNNNN.mp4`, captions under
//! `annotations/caption/<split>/` **or** directly `annotations/<split>/` (the official README
//! example has no `caption/` level; real unpacks do: wts.md §1.2), pedestrian boxes under
//! `annotations/bbox_{annotated,generated}/<split>/`, VQA under `annotations/vqa/<split>/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::fsutil::{files_with, split_dir, subdirs};
use super::{Missing, Scenario, Source, Split, SubjectFiles, VideoEntry, View, VqaRef, VqaRole};
use crate::error::DatasetError;

const CAPTION_SUFFIX: &str = "_caption.json";

/// Every video of `split` under the BDD_PC_5K `root`, sorted by name.
///
/// Errors only when `root` has neither a videos nor a caption folder for the split.
pub fn discover_bdd(root: &Path, split: Split) -> Result<Vec<Scenario>, DatasetError> {
    let ann = root.join("annotations");
    let video_split = split_dir(&root.join("videos"), split.name());
    let caption_dirs: Vec<PathBuf> = [
        split_dir(&ann.join("caption"), split.name()),
        split_dir(&ann, split.name()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if video_split.is_none() && caption_dirs.is_empty() {
        return Err(DatasetError::invalid(
            root,
            format!(
                "not a BDD_PC_5K root for split {split}: neither videos/{split}/ nor \
                 annotations/caption/{split}/ nor annotations/{split}/ exists"
            ),
        ));
    }
    let mut stems = BTreeSet::new();
    if let Some(v) = &video_split {
        for f in files_with(v, ".mp4")? {
            stems.insert(f[..f.len() - 4].to_string());
        }
    }
    for d in &caption_dirs {
        for f in files_with(d, CAPTION_SUFFIX)? {
            stems.insert(f[..f.len() - CAPTION_SUFFIX.len()].to_string());
        }
    }
    let bbox_split = |kind: &str| split_dir(&ann.join(kind), split.name());
    let (annotated, generated) = (bbox_split("bbox_annotated"), bbox_split("bbox_generated"));
    let vqa_split = split_dir(&ann.join("vqa"), split.name());

    let mut out = Vec::with_capacity(stems.len());
    for stem in stems {
        let mut missing = Vec::new();
        let mut videos = Vec::new();
        let video_dir = video_split
            .clone()
            .unwrap_or_else(|| root.join("videos").join(split.name()));
        let file = format!("{stem}.mp4");
        let path = video_dir.join(&file);
        if path.is_file() {
            let mut bbox = |kind: &str, dir: &Option<PathBuf>| {
                let p = dir
                    .clone()
                    .unwrap_or_else(|| ann.join(kind).join(split.name()))
                    .join(format!("{stem}_bbox.json"));
                if p.is_file() {
                    Some(p)
                } else {
                    missing.push(Missing {
                        what: format!("{kind} pedestrian ({file})"),
                        path: p,
                    });
                    None
                }
            };
            // BDD has pedestrian boxes only: the ego car is the vehicle (wts.md §1.4).
            let bbox_annotated = SubjectFiles {
                pedestrian: bbox("bbox_annotated", &annotated),
                vehicle: None,
            };
            let bbox_generated = SubjectFiles {
                pedestrian: bbox("bbox_generated", &generated),
                vehicle: None,
            };
            videos.push(VideoEntry {
                view: View::Vehicle,
                path,
                file_name: file,
                stem: stem.clone(),
                camera: None,
                bbox_annotated,
                bbox_generated,
            });
        } else {
            missing.push(Missing {
                what: "video".into(),
                path,
            });
        }
        let caption_name = format!("{stem}{CAPTION_SUFFIX}");
        let caption = caption_dirs
            .iter()
            .map(|d| d.join(&caption_name))
            .find(|p| p.is_file());
        if caption.is_none() {
            missing.push(Missing {
                what: "caption".into(),
                path: ann.join("caption").join(split.name()).join(&caption_name),
            });
        }
        let vqa = match &vqa_split {
            Some(v) => vqa_files(v, &stem)?,
            None => Vec::new(),
        };
        missing.sort();
        out.push(Scenario {
            source: Source::Bdd,
            name: stem,
            normal: false,
            split,
            videos,
            overhead_caption: None,
            vehicle_caption: caption,
            vqa,
            missing,
        });
    }
    Ok(out)
}

/// `vqa/<split>/<stem>.json` and every JSON under `vqa/<split>/<stem>/` (one level of role
/// folders, as the 2025 release: `<stem>/vehicle_view/<stem>.json`; wts.md §1.2).
fn vqa_files(base: &Path, stem: &str) -> Result<Vec<VqaRef>, DatasetError> {
    let mut out = Vec::new();
    let flat = base.join(format!("{stem}.json"));
    if flat.is_file() {
        out.push(VqaRef {
            role: VqaRole::Vehicle,
            path: flat,
        });
    }
    let dir = base.join(stem);
    for f in files_with(&dir, ".json")? {
        out.push(VqaRef {
            role: VqaRole::Vehicle,
            path: dir.join(f),
        });
    }
    for sub in subdirs(&dir)? {
        let role = match sub.as_str() {
            "environment" => VqaRole::Environment,
            "overhead_view" => VqaRole::Overhead,
            _ => VqaRole::Vehicle,
        };
        for f in files_with(&dir.join(&sub), ".json")? {
            out.push(VqaRef {
                role,
                path: dir.join(&sub).join(f),
            });
        }
    }
    out.sort();
    Ok(out)
}
