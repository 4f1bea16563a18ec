//! WTS discovery: `videos/<split>/<scenario>/{overhead_view,vehicle_view}/*.mp4`,
//! `videos/<split>/normal_trimmed/<scenario>/...`, `annotations/caption/<split>/...`,
//! `annotations/bbox_{annotated,generated}/{pedestrian,vehicle}/<split>/...`,
//! `annotations/vqa/<split>/<scenario>/{environment,overhead_view,vehicle_view}/...`
//! (wts.md §1.2).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::fsutil::{file_or_single, files_with, split_dir, subdirs};
use super::{Missing, Scenario, Source, Split, SubjectFiles, VideoEntry, View, VqaRef, VqaRole};
use crate::error::DatasetError;

const NORMAL_DIR: &str = "normal_trimmed";

/// Every scenario of `split` under the WTS `root`, sorted by name (normal scenarios included).
///
/// Errors only when `root` has neither a videos nor a caption folder for the split (a wrong
/// root), or a folder cannot be read.
pub fn discover_wts(root: &Path, split: Split) -> Result<Vec<Scenario>, DatasetError> {
    let video_split = split_dir(&root.join("videos"), split.name());
    let caption_split = split_dir(&root.join("annotations/caption"), split.name());
    if video_split.is_none() && caption_split.is_none() {
        return Err(DatasetError::invalid(
            root,
            format!(
                "not a WTS root for split {split}: neither videos/{split}/ nor \
                 annotations/caption/{split}/ exists"
            ),
        ));
    }
    // Relative scenario folder ("<name>" or "normal_trimmed/<name>") by scenario name.
    let mut rels: BTreeMap<String, PathBuf> = BTreeMap::new();
    for base in [&video_split, &caption_split].into_iter().flatten() {
        for name in subdirs(base)? {
            if name == NORMAL_DIR {
                for n in subdirs(&base.join(NORMAL_DIR))? {
                    rels.insert(n.clone(), Path::new(NORMAL_DIR).join(n));
                }
            } else {
                rels.insert(name.clone(), PathBuf::from(name));
            }
        }
    }
    let bbox_roots = bbox_roots(root);
    let vqa_split = split_dir(&root.join("annotations/vqa"), split.name());

    let mut out = Vec::with_capacity(rels.len());
    for (name, rel) in rels {
        let ctx = Ctx {
            name: &name,
            rel: &rel,
            split,
            video_split: video_split.as_deref(),
            caption_split: caption_split.as_deref(),
            bbox_roots: &bbox_roots,
            vqa_split: vqa_split.as_deref(),
        };
        out.push(ctx.scenario()?);
    }
    Ok(out)
}

/// Folders holding `bbox_annotated/` and `bbox_generated/`: `<root>/annotations`, and for the
/// public test part the sibling `<root>_BBOX/annotations` (WTS_DATASET_PUBLIC_TEST_BBOX).
fn bbox_roots(root: &Path) -> Vec<PathBuf> {
    let mut roots = vec![root.join("annotations")];
    if let (Some(parent), Some(name)) = (root.parent(), root.file_name()) {
        let mut sibling = name.to_os_string();
        sibling.push("_BBOX");
        roots.push(parent.join(sibling).join("annotations"));
    }
    roots
}

struct Ctx<'a> {
    name: &'a str,
    rel: &'a Path,
    split: Split,
    video_split: Option<&'a Path>,
    caption_split: Option<&'a Path>,
    bbox_roots: &'a [PathBuf],
    vqa_split: Option<&'a Path>,
}

impl Ctx<'_> {
    fn scenario(&self) -> Result<Scenario, DatasetError> {
        let mut missing = Vec::new();
        let mut videos = Vec::new();
        let video_dir = self
            .video_split
            .map(|v| v.join(self.rel))
            .unwrap_or_else(|| {
                PathBuf::from("videos")
                    .join(self.split.name())
                    .join(self.rel)
            });
        if !video_dir.is_dir() {
            missing.push(Missing {
                what: "video folder".into(),
                path: video_dir.clone(),
            });
        }
        for view in [View::Overhead, View::Vehicle] {
            let dir = video_dir.join(view.dir_name());
            for file in files_with(&dir, ".mp4")? {
                videos.push(self.video(view, dir.join(&file), file, &mut missing));
            }
        }
        let has_view = |v: View| videos.iter().any(|e: &VideoEntry| e.view == v);
        if video_dir.is_dir() && !has_view(View::Overhead) {
            missing.push(Missing {
                what: "overhead video".into(),
                path: video_dir.join(View::Overhead.dir_name()),
            });
        }

        let mut caption = |view: View| -> Result<Option<PathBuf>, DatasetError> {
            let Some(base) = self.caption_split else {
                return Ok(None);
            };
            let dir = base.join(self.rel).join(view.dir_name());
            let preferred = [format!("{}_caption.json", self.name)];
            let found = file_or_single(&dir, &preferred, "_caption.json")?;
            // A missing vehicle caption only matters when there is a vehicle video
            // (normal_trimmed scenarios often have none: wts.md §1.2).
            if found.is_none() && (view == View::Overhead || has_view(view)) {
                missing.push(Missing {
                    what: format!("{} caption", view.dir_name()),
                    path: dir.join(&preferred[0]),
                });
            }
            Ok(found)
        };
        let overhead_caption = caption(View::Overhead)?;
        let vehicle_caption = caption(View::Vehicle)?;

        let vqa = self.vqa()?;
        missing.sort();
        Ok(Scenario {
            source: Source::Wts,
            name: self.name.to_string(),
            normal: self.rel.starts_with(NORMAL_DIR),
            split: self.split,
            videos,
            overhead_caption,
            vehicle_caption,
            vqa,
            missing,
        })
    }

    fn video(
        &self,
        view: View,
        path: PathBuf,
        file: String,
        missing: &mut Vec<Missing>,
    ) -> VideoEntry {
        let stem = file
            .strip_suffix(".mp4")
            .or_else(|| file.strip_suffix(".MP4"))
            .unwrap_or(&file)
            .to_string();
        // `<scenario>_Camera1_0` / `<scenario>_192.168.0.14_1` (wts.md §1.2, ARV frame index).
        let camera = match view {
            View::Overhead => stem
                .strip_prefix(self.name)
                .and_then(|r| r.strip_prefix('_'))
                .filter(|r| !r.is_empty())
                .map(str::to_string),
            View::Vehicle => None,
        };
        let mut bbox = |kind: &str, who: &str| -> Option<PathBuf> {
            let file_name = format!("{stem}_bbox.json");
            let mut first_tried = None;
            for root in self.bbox_roots {
                let Some(base) = split_dir(&root.join(kind).join(who), self.split.name()) else {
                    continue;
                };
                let p = base.join(self.rel).join(view.dir_name()).join(&file_name);
                if p.is_file() {
                    return Some(p);
                }
                first_tried.get_or_insert(p);
            }
            // The vehicle view is filmed from the vehicle itself: it has no vehicle box
            // (wts.md §1.4, like BDD's ego view), so that absence is not worth reporting.
            if view == View::Vehicle && who == "vehicle" {
                return None;
            }
            missing.push(Missing {
                what: format!("{kind} {who} ({file})"),
                path: first_tried.unwrap_or_else(|| {
                    self.bbox_roots[0]
                        .join(kind)
                        .join(who)
                        .join(self.split.name())
                        .join(&file_name)
                }),
            });
            None
        };
        let bbox_annotated = SubjectFiles {
            pedestrian: bbox("bbox_annotated", "pedestrian"),
            vehicle: bbox("bbox_annotated", "vehicle"),
        };
        let bbox_generated = SubjectFiles {
            pedestrian: bbox("bbox_generated", "pedestrian"),
            vehicle: bbox("bbox_generated", "vehicle"),
        };
        VideoEntry {
            view,
            path,
            file_name: file.clone(),
            stem,
            camera,
            bbox_annotated,
            bbox_generated,
        }
    }

    /// VQA files: `<scenario>.json`, or `<scenario>_<view>.json` (tsda README names the overhead
    /// one `<scenario>_overhead_view.json`; wts.md §1.2), or the only JSON in the folder.
    fn vqa(&self) -> Result<Vec<VqaRef>, DatasetError> {
        let Some(base) = self.vqa_split else {
            return Ok(Vec::new());
        };
        let dir = base.join(self.rel);
        let mut out = Vec::new();
        for (role, sub) in [
            (VqaRole::Environment, "environment"),
            (VqaRole::Overhead, "overhead_view"),
            (VqaRole::Vehicle, "vehicle_view"),
        ] {
            let preferred = [
                format!("{}.json", self.name),
                format!("{}_{sub}.json", self.name),
            ];
            if let Some(path) = file_or_single(&dir.join(sub), &preferred, ".json")? {
                out.push(VqaRef { role, path });
            }
        }
        Ok(out)
    }
}
