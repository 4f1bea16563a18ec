//! Pre-training checks of the datasets a mixture names, and the report they produce.
//!
//! VILA finds most data problems only when a sample is loaded, and then hides them:
//! `llava/data/base.py::BaseDataset.__getitem__` catches any exception and returns a
//! random other sample (`resample_on_failure`, on by default). A missing image or a
//! conversation starting with `gpt` therefore silently shrinks the dataset. These checks
//! find such records before training. They follow `LLaVADataset`
//! (`llava/data/dataset_impl/llava.py`): `image` and `images` are a string or a list
//! (`make_list`), `video` likewise, paths are joined to `media_dir`, the first message must
//! come from `human`, and senders are `human`, `gpt` or `system`
//! (`llava/remote_code/tokenizer_utils.py::tokenize_conversation`).
//!
//! Validation collects problems instead of stopping at the first: it keeps the first
//! [`ValidateOptions::max_problems`] and counts the rest, and returns them all in one
//! [`RegistryError::Validation`].

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::entry::{DatasetEntry, LLAVA_TARGET};
use crate::error::{ProblemLog, RegistryError};
use crate::media::MediaRoot;
use crate::mixture::MixtureItem;
use crate::records::{format_of, read_records};
use crate::registry::Registry;
use crate::report::{Counts, DatasetReport, ValidateOptions, ValidationReport};
use crate::scan::Scan;

/// Validates every dataset of a parsed mixture with default options (first 20 problems).
pub fn validate(
    registry: &Registry,
    items: &[MixtureItem],
) -> Result<ValidationReport, RegistryError> {
    validate_with(registry, items, &ValidateOptions::default())
}

/// Validates every dataset of a parsed mixture. A dataset named several times is read
/// once.
pub fn validate_with(
    registry: &Registry,
    items: &[MixtureItem],
    options: &ValidateOptions,
) -> Result<ValidationReport, RegistryError> {
    let mut problems = ProblemLog::new(options.max_problems);
    let mut checked: HashMap<&str, Option<Checked>> = HashMap::new();
    let mut subsets: HashMap<(&str, &str), Option<usize>> = HashMap::new();
    let mut datasets = Vec::with_capacity(items.len());

    for item in items {
        let name = item.name.as_str();
        if !checked.contains_key(name) {
            let result = check_dataset(registry, name, &mut problems);
            checked.insert(name, result);
        }
        let Some(Some(found)) = checked.get(name) else {
            continue;
        };
        let subset_records = match (&item.subset, &options.slice_folder) {
            (Some(subset), Some(folder)) => {
                *subsets.entry((name, subset.as_str())).or_insert_with(|| {
                    check_subset(folder, subset, name, found.counts.records, &mut problems)
                })
            }
            _ => None,
        };
        datasets.push(DatasetReport {
            name: item.name.clone(),
            repeat: item.repeat,
            subset: item.subset.clone(),
            target: found.entry.target.clone(),
            data_path: found.entry.data_path.clone(),
            media_dir: found.entry.media_dir.clone(),
            is_video: found.is_video,
            counts: found.counts,
            subset_records,
        });
    }

    if let Some(err) = problems.into_error() {
        return Err(err);
    }
    let samples_per_epoch = datasets
        .iter()
        .map(|d| {
            d.subset_records
                .unwrap_or(d.counts.records)
                .saturating_mul(d.repeat)
        })
        .fold(0usize, usize::saturating_add);
    Ok(ValidationReport {
        datasets,
        samples_per_epoch,
    })
}

/// A dataset whose file was read (possibly with problems).
struct Checked {
    entry: DatasetEntry,
    counts: Counts,
    is_video: bool,
}

/// The file a registry-level problem is reported against.
fn registry_file(registry: &Registry, name: &str) -> PathBuf {
    registry
        .source_of(name)
        .or_else(|| registry.sources().last().map(PathBuf::as_path))
        .map_or_else(|| PathBuf::from("<in-memory registry>"), Path::to_path_buf)
}

/// At most this many known names are listed for an unknown one.
const MAX_LISTED_NAMES: usize = 50;

fn check_dataset(registry: &Registry, name: &str, problems: &mut ProblemLog) -> Option<Checked> {
    let reg_file = registry_file(registry, name);
    if !registry.contains(name) {
        let mut known: Vec<&str> = registry.names().collect();
        known.sort_unstable();
        let listed = if known.is_empty() {
            "(none)".to_string()
        } else if known.len() > MAX_LISTED_NAMES {
            format!(
                "{}, ... ({} more)",
                known[..MAX_LISTED_NAMES].join(", "),
                known.len() - MAX_LISTED_NAMES
            )
        } else {
            known.join(", ")
        };
        let files = if registry.sources().is_empty() {
            "none, built in memory".to_string()
        } else {
            registry
                .sources()
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        problems.push(
            &reg_file,
            None,
            format!("dataset \"{name}\" is not in the registry (files: {files}); known datasets: {listed}"),
        );
        return None;
    }
    let Some(entry) = registry.get(name) else {
        problems.push(
            &reg_file,
            None,
            format!(
                "dataset \"{name}\" (target {}) has no data_path; only JSON-backed datasets can be validated",
                registry.target(name).unwrap_or("?")
            ),
        );
        return None;
    };
    if !entry.is_llava_dataset() {
        problems.push(
            &reg_file,
            None,
            format!(
                "dataset \"{name}\": target {} is not {LLAVA_TARGET}; only LLaVADataset records can be validated",
                entry.target
            ),
        );
        return None;
    }
    if entry.has_system_prompt() && entry.no_system_prompt() {
        // base.py asserts this per sample, inside the try that resamples on failure.
        problems.push(
            &reg_file,
            None,
            format!("dataset \"{name}\" sets both system_prompt and no_system_prompt; VILA asserts they are exclusive"),
        );
    }

    let data_path = &entry.data_path;
    let data_str = data_path.to_string_lossy();
    if [
        "hf://",
        "hf-hub://",
        "hf-dataset://",
        "hf-datasets://",
        "hf@",
    ]
    .iter()
    .any(|p| data_str.starts_with(p))
    {
        problems.push(
            &reg_file,
            None,
            format!("dataset \"{name}\": data_path {data_str} is a Hugging Face URL; download it and point data_path at the local file"),
        );
        return None;
    }
    let Some(format) = format_of(data_path) else {
        problems.push(
            data_path,
            None,
            format!("dataset \"{name}\": data_path must end in .json or .jsonl (VILA's io.load picks the reader by extension)"),
        );
        return None;
    };
    if !data_path.is_file() {
        problems.push(
            data_path,
            None,
            format!(
                "data_path of dataset \"{name}\" (registry {}) does not exist or is not a file",
                reg_file.display()
            ),
        );
        return None;
    }

    let media = match &entry.media_dir {
        None => None,
        Some(dir) => match MediaRoot::open(dir) {
            Ok(root) => Some(root),
            Err(message) => {
                problems.push(&reg_file, None, format!("dataset \"{name}\": {message}"));
                // Without a root no media path can be checked; one problem is enough.
                return None;
            }
        },
    };

    let mut scan = Scan::new(
        data_path,
        media.as_ref(),
        entry.no_system_prompt(),
        problems,
    );
    read_records(data_path, format, &mut scan);
    let (counts, has_video_key, unreadable, media_without_root) = (
        scan.counts,
        scan.has_video_key,
        scan.unreadable,
        scan.media_without_root,
    );
    if let Some((first, count)) = media_without_root {
        problems.push(
            &reg_file,
            None,
            format!(
                "dataset \"{name}\" has no media_dir but {count} record(s) of {} reference media (first: record {first})",
                data_path.display()
            ),
        );
    }
    if counts.records == 0 && !unreadable {
        problems.push(
            data_path,
            None,
            "has no records (VILA divides by the record count when padding to the global batch size)".to_string(),
        );
    }
    Some(Checked {
        is_video: entry.is_video() || has_video_key,
        counts,
        entry: entry.clone(),
    })
}

/// Checks `<folder>/<subset>/<name>.json` and returns the records that remain after
/// VILA drops the listed indices (`build_dataset`: `set(range(len)) - set(ignore)`).
fn check_subset(
    folder: &Path,
    subset: &str,
    name: &str,
    records: usize,
    problems: &mut ProblemLog,
) -> Option<usize> {
    let path = folder.join(subset).join(format!("{name}.json"));
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(
                &path,
                None,
                format!("subset \"{subset}\" of dataset \"{name}\": cannot read: {e}"),
            );
            return None;
        }
    };
    let indices: Vec<Value> = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(
                &path,
                None,
                format!("expected a JSON list of record indices: {e}"),
            );
            return None;
        }
    };
    let mut dropped = BTreeSet::new();
    for (i, v) in indices.iter().enumerate() {
        match v.as_u64() {
            Some(n) => {
                if let Ok(n) = usize::try_from(n)
                    && n < records
                {
                    dropped.insert(n);
                }
            }
            None => {
                problems.push(
                    &path,
                    None,
                    format!("element {i} is not a record index: {v}"),
                );
                return None;
            }
        }
    }
    Some(records - dropped.len())
}
