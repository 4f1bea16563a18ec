//! Shared helpers of the end-to-end tests: one synthetic tree per test binary, tree copies
//! for tests that damage inputs, and JSON readers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use wts_dataset::synth::{SynthSummary, write_synthetic_tree};

/// The synthetic tree, written once per test binary (encoding the MP4s takes a few seconds).
pub fn synth() -> &'static SynthSummary {
    static TREE: OnceLock<(tempfile::TempDir, SynthSummary)> = OnceLock::new();
    &TREE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let summary = write_synthetic_tree(dir.path()).unwrap();
            (dir, summary)
        })
        .1
}

/// A private copy of the synthetic tree (for tests that damage or move files).
pub fn synth_copy() -> (tempfile::TempDir, SynthSummary) {
    let s = synth();
    let root = s.wts_root.parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(root, dir.path());
    let map = |p: &Path| dir.path().join(p.strip_prefix(root).unwrap());
    let copy = SynthSummary {
        wts_root: map(&s.wts_root),
        bdd_root: map(&s.bdd_root),
        main_view_csv: map(&s.main_view_csv),
        videos: s.videos,
        scenarios: s.scenarios.clone(),
    };
    (dir, copy)
}

/// Recursive copy.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The dataset folder of a conversion named `name` under `out`.
pub fn dataset_dir(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{name}_dataset"))
}

/// Every file under `dir` (relative path, bytes), sorted.
pub fn tree_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push((
                    p.strip_prefix(base).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
