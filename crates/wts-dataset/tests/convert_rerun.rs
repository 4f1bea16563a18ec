//! Determinism (same input → byte-identical output in two folders) and re-runs (images of
//! identical work items are reused; changed ones are rewritten; stale files removed).

mod convert_support;

use std::path::Path;

use convert_support::{dataset_dir, read_json, synth, tree_bytes};
use wts_dataset::convert::{ConvertConfig, FramePick, convert};

fn config(out: &Path) -> ConvertConfig {
    let s = synth();
    let mut cfg = ConvertConfig::new(out, "DET");
    cfg.wts_root = Some(s.wts_root.clone());
    cfg.bdd_root = Some(s.bdd_root.clone());
    cfg.include_vqa = true;
    cfg.multi_image = true;
    cfg.main_view_csv = Some(s.main_view_csv.clone());
    cfg
}

#[test]
fn two_runs_into_two_folders_are_byte_identical() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ra = convert(&config(a.path())).unwrap();
    let rb = convert(&config(b.path())).unwrap();
    assert_eq!(ra.samples, rb.samples);
    assert_eq!(ra.images_written, rb.images_written);
    let (ta, tb) = (
        tree_bytes(&dataset_dir(a.path(), "DET")),
        tree_bytes(&dataset_dir(b.path(), "DET")),
    );
    let names: Vec<_> = ta.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(names, tb.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>());
    for ((p, x), (_, y)) in ta.iter().zip(&tb) {
        assert!(x == y, "{} differs", p.display());
    }
    for f in [
        "dataset.json",
        "manifest.json",
        "report.json",
        "dataset_info.json",
    ] {
        assert!(names.iter().any(|n| n == Path::new(f)), "{f}");
    }
    // No temporary files left behind.
    assert!(!names.iter().any(|n| n.to_string_lossy().contains(".tmp-")));
}

#[test]
fn a_second_run_reuses_every_image() {
    let out = tempfile::tempdir().unwrap();
    let cfg = config(out.path());
    let first = convert(&cfg).unwrap();
    assert_eq!(first.images_reused, 0);
    assert!(first.images_written > 0);
    let before = tree_bytes(&dataset_dir(out.path(), "DET"));
    let second = convert(&cfg).unwrap();
    assert_eq!(second.images_written, 0);
    assert_eq!(second.images_reused, first.images_written);
    assert_eq!(second.samples, first.samples);
    assert_eq!(
        before,
        tree_bytes(&dataset_dir(out.path(), "DET")),
        "same bytes after the re-run"
    );
}

#[test]
fn changed_or_damaged_images_are_rewritten_and_stale_ones_removed() {
    let out = tempfile::tempdir().unwrap();
    let mut cfg = config(out.path());
    let first = convert(&cfg).unwrap();
    let dir = dataset_dir(out.path(), "DET");

    // A damaged image (size differs from the manifest) is rewritten, the rest reused.
    std::fs::write(dir.join("images/3.jpg"), b"garbage").unwrap();
    let r = convert(&cfg).unwrap();
    assert_eq!(
        (r.images_written, r.images_reused),
        (1, first.images_written - 1)
    );

    // Another box colour: every image with a box changes its key.
    cfg.pedestrian_color = [255, 0, 0];
    let r = convert(&cfg).unwrap();
    assert!(r.images_written > first.images_written / 2, "{r:?}");

    // Fewer images (one frame per phase, single image): stale numbered images are removed.
    cfg.multi_image = false;
    cfg.include_vqa = false;
    cfg.frames = FramePick::Start;
    let r = convert(&cfg).unwrap();
    let on_disk = std::fs::read_dir(dir.join("images")).unwrap().count();
    let manifest = read_json(&dir.join("manifest.json"));
    assert_eq!(on_disk, manifest["images"].as_array().unwrap().len());
    assert_eq!(on_disk, r.images_written + r.images_reused);
}
