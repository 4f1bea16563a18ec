//! VQA files that cover many scenarios at once: the 2025 public test file
//! `WTS_VQA_PUBLIC_TEST.json` (a list of entries naming their `videos`; wts.md §1.5). It ships
//! as `test_part/SubTask2-VQA/`, outside the caption / video roots (wts.md §1.2 tree), so both
//! `annotations/vqa/<split>/*.json` and a `SubTask2-VQA/` folder next to the root (or next to
//! its parent, for `SubTask1-Caption/WTS_DATASET_PUBLIC_TEST`) are searched.

use std::path::{Path, PathBuf};

use super::Split;
use super::fsutil::{files_with, split_dir};
use crate::error::DatasetError;

const SHARED_DIR: &str = "SubTask2-VQA";

/// JSON files directly under `annotations/vqa/<split>/` and, for the test split, in a
/// `SubTask2-VQA/` folder beside the root or beside its parent. Sorted, no duplicates.
pub fn shared_vqa_files(root: &Path, split: Split) -> Result<Vec<PathBuf>, DatasetError> {
    let mut dirs: Vec<PathBuf> = split_dir(&root.join("annotations/vqa"), split.name())
        .into_iter()
        .collect();
    if split == Split::Test {
        let mut up = root.parent();
        for _ in 0..2 {
            if let Some(p) = up {
                dirs.push(p.join(SHARED_DIR));
                up = p.parent();
            }
        }
    }
    let mut out = Vec::new();
    for d in dirs {
        for f in files_with(&d, ".json")? {
            out.push(d.join(f));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
