//! `TrainingSet::open` on a real dataset (JPEGs + dataset.json) and a real registry YAML:
//! mixture order and repetition, padding to the global batch, subsets, and bad input.

mod data_support;

use std::path::Path;

use data_support::{record, three_datasets, write_dataset, write_records, write_registry};
use serde_json::json;
use trainer::data::{
    BatchGeometry, DataError, OpenOptions, PyRandom, TrainingSet, pad_to_global_batch,
};

fn options(global: usize) -> OpenOptions {
    OpenOptions::new(BatchGeometry::new(1, 1, global).unwrap(), 42)
}

/// (dataset, record index) of every sample, in set order.
fn layout(set: &TrainingSet) -> Vec<(String, usize)> {
    (0..set.len())
        .map(|i| {
            let s = set.sample(i).unwrap();
            (s.dataset.to_string(), s.record_index)
        })
        .collect()
}

#[test]
fn mixture_is_sorted_repeated_and_padded_like_vila() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = three_datasets(tmp.path());
    // Written out of order: VILA sorts the raw strings, so "a*2" < "b" < "c".
    let set = TrainingSet::open(&reg, "c+a*2+b", &options(2)).unwrap();

    // The same draws VILA makes after set_seed(42): one LLaVADataset per element, in order.
    let mut rng = PyRandom::new(42);
    let a = pad_to_global_batch(5, 2, &mut rng);
    let b = pad_to_global_batch(3, 2, &mut rng);
    let c = pad_to_global_batch(4, 2, &mut rng);
    assert_eq!((a.len(), b.len(), c.len()), (6, 4, 4));
    assert_eq!(&a[..5], &[0, 1, 2, 3, 4]);

    let mut want = Vec::new();
    for _ in 0..2 {
        want.extend(a.iter().map(|&r| ("a".to_string(), r)));
    }
    want.extend(b.iter().map(|&r| ("b".to_string(), r)));
    want.extend(c.iter().map(|&r| ("c".to_string(), r)));
    assert_eq!(layout(&set), want);
    assert_eq!(set.sample_lens(), vec![12, 4, 4]);

    let padding = set.padding();
    assert_eq!(
        (padding.before, padding.after, padding.global_batch),
        (17, 20, 2)
    );
    assert_eq!(
        padding.to_string(),
        "dataset padded from 17 to 20 samples (a multiple of the global batch 2 per dataset, as VILA's LLaVADataset does)"
    );
    let a_report = &padding.datasets[0];
    assert_eq!(
        (
            a_report.name.as_str(),
            a_report.records,
            a_report.padded,
            a_report.repeat,
            a_report.samples
        ),
        ("a", 5, 6, 2, 12)
    );
    // The record behind a sample, with its images under media_dir.
    let s = set.sample(13).unwrap();
    assert_eq!(s.dataset, "b");
    assert_eq!(s.record.id.as_deref(), Some("b-1"));
    assert!(s.image_paths()[0].ends_with("b/images/b_1.jpg"));
    assert!(s.image_paths()[0].is_file());
}

#[test]
fn mixtures_file_expands_names_and_duplicates_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = three_datasets(tmp.path());
    let mixtures = tmp.path().join("mixtures.yaml");
    std::fs::write(&mixtures, "both: [c, a]\n").unwrap();
    let mut opts = options(1);
    opts.mixtures_file = Some(mixtures);
    let set = TrainingSet::open(&reg, "both+b+a", &opts).unwrap();
    let names: Vec<&str> = set
        .padding()
        .datasets
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["a", "a", "b", "c"]);
    assert_eq!(set.len(), 5 + 5 + 3 + 4);
    assert_eq!(set.padding().before, set.padding().after); // global batch 1: no padding
}

#[test]
fn small_dataset_is_replicated_before_padding() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, media) = write_dataset(tmp.path(), "tiny", 1);
    let reg = tmp.path().join("reg.yaml");
    write_registry(&reg, &[("tiny", data, media)]);
    // VILA's quirk: 1 record, global batch 2 -> replicated to 2, then a full batch more.
    let set = TrainingSet::open(&reg, "tiny", &options(2)).unwrap();
    assert_eq!(set.len(), 4);
    assert_eq!(
        set.padding().to_string().split(" (").next().unwrap(),
        "dataset padded from 1 to 4 samples"
    );
}

#[test]
fn subset_drops_the_listed_padded_indices() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = three_datasets(tmp.path());
    let slices = tmp.path().join("slices");
    std::fs::create_dir_all(slices.join("s1")).unwrap();
    std::fs::write(slices.join("s1").join("a.json"), "[0, 5, 99]").unwrap();
    let mut opts = options(2);
    opts.slice_folder = Some(slices);
    let set = TrainingSet::open(&reg, "a@s1", &opts).unwrap();
    let mut rng = PyRandom::new(42);
    let padded = pad_to_global_batch(5, 2, &mut rng);
    let want: Vec<(String, usize)> = padded[1..5].iter().map(|&r| ("a".to_string(), r)).collect();
    assert_eq!(layout(&set), want);
    assert_eq!(set.subset(0), Some("s1"));

    // Without a slice folder the subset cannot be resolved.
    let err = TrainingSet::open(&reg, "a@s1", &options(2)).unwrap_err();
    assert!(err.to_string().contains("VILA_SLICE_FOLDER"), "{err}");
}

#[test]
fn unknown_dataset_name_is_named_with_the_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = three_datasets(tmp.path());
    let err = TrainingSet::open(&reg, "a+nope", &options(2)).unwrap_err();
    match &err {
        DataError::UnknownDataset { name, known, .. } => {
            assert_eq!(name, "nope");
            assert_eq!(known, &["a", "b", "c"]);
        }
        other => panic!("unexpected error {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("\"nope\"") && msg.contains("default.yaml"),
        "{msg}"
    );
}

#[test]
fn missing_data_file_is_reported_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, media) = write_dataset(tmp.path(), "a", 2);
    std::fs::remove_file(&data).unwrap();
    let reg = tmp.path().join("reg.yaml");
    write_registry(&reg, &[("a", data.clone(), media)]);
    let err = TrainingSet::open(&reg, "a", &options(1)).unwrap_err();
    assert!(matches!(err, DataError::Registry(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&data.display().to_string()) && msg.contains("does not exist"),
        "{msg}"
    );
}

#[test]
fn missing_image_names_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, media) = write_dataset(tmp.path(), "a", 4);
    std::fs::remove_file(media.join("images/a_2.jpg")).unwrap();
    let reg = tmp.path().join("reg.yaml");
    write_registry(&reg, &[("a", data.clone(), media)]);
    let msg = TrainingSet::open(&reg, "a", &options(1))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&format!("{}: record 2", data.display())),
        "{msg}"
    );
    assert!(
        msg.contains("a_2.jpg") && msg.contains("not found"),
        "{msg}"
    );
}

#[test]
fn more_image_tags_than_images_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bad = record("a", 1);
    bad["conversations"][0]["value"] = json!("<image>\n<image>\nCompare the two views.");
    let (data, media) = write_records(tmp.path(), "a", &[record("a", 0), bad]);
    let reg = tmp.path().join("reg.yaml");
    write_registry(&reg, &[("a", data.clone(), media)]);
    let err = TrainingSet::open(&reg, "a", &options(1)).unwrap_err();
    match &err {
        DataError::Record {
            file, record, id, ..
        } => {
            assert_eq!(
                (file.as_path(), *record, id.as_deref()),
                (data.as_path(), 1, Some("a-1"))
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("2 `<image>` tags"), "{err}");
}

#[test]
fn malformed_record_is_reported_by_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bad = record("a", 1);
    bad["conversations"][0]["from"] = json!("gpt");
    let (data, media) = write_records(tmp.path(), "a", &[record("a", 0), bad]);
    let reg = tmp.path().join("reg.yaml");
    write_registry(&reg, &[("a", data.clone(), media)]);
    let msg = TrainingSet::open(&reg, "a", &options(1))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&format!("{}: record 1", data.display())),
        "{msg}"
    );
    assert!(msg.contains("first message"), "{msg}");
}

#[test]
fn missing_registry_file_names_it() {
    let err = TrainingSet::open(Path::new("/nonexistent/reg.yaml"), "a", &options(1)).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/reg.yaml"), "{err}");
}
