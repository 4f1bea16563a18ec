//! The training set of a `DATA_MIXTURE`: VILA's `build_dataset`, in Rust.
//!
//! `llava/data/builder.py::build_dataset` (NVlabs/VILA) parses the mixture (split on `+`,
//! mixtures expanded, names `sorted()`: the registry crate's [`registry::parse_mixture`]),
//! then for each element in that order: instantiates the registry entry (a
//! `LLaVADataset`, which loads its records and pads them to a multiple of the global batch:
//! [`super::padding`]), drops the indices listed in `$VILA_SLICE_FOLDER/<subset>/<name>.json`
//! for `name@subset`, wraps it in `RepeatedDataset` for `name*N`, and concatenates all of
//! them (`ConcatDataset`). Sample `i` of the set is sample `i` of that concatenation.
//!
//! Before anything is loaded, the registry crate validates every dataset of the mixture
//! (missing data files, missing or escaping media, malformed conversations) and reports all
//! problems at once: VILA would find them one sample at a time and silently resample
//! (`BaseDataset.__getitem__`, `resample_on_failure`), which changes what is trained.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nvila_model::processor::SystemPrompt;
use registry::{Mixtures, Registry, ValidateOptions, parse_mixture, validate_with};
use serde_yaml::Value as Yaml;

use super::error::DataError;
use super::geometry::BatchGeometry;
use super::padding::{DatasetPadding, PaddingReport, pad_to_global_batch};
use super::pyrandom::PyRandom;
use super::records::{Record, read_records};

/// How a training set is built, beyond the registry and the mixture string.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The batch shape; its global batch is what every dataset is padded to.
    pub geometry: BatchGeometry,
    /// The run's seed (`--seed`, HF default 42): seeds the padding draws like `set_seed`.
    pub seed: u64,
    /// VILA's `mixtures.yaml`, to expand mixture names; None: names are datasets only.
    pub mixtures_file: Option<PathBuf>,
    /// VILA's `$VILA_SLICE_FOLDER`, needed by `name@subset` items.
    pub slice_folder: Option<PathBuf>,
}

impl OpenOptions {
    /// Options with no mixtures file and no slice folder.
    pub fn new(geometry: BatchGeometry, seed: u64) -> Self {
        Self {
            geometry,
            seed,
            mixtures_file: None,
            slice_folder: None,
        }
    }
}

/// The system prompt of a dataset entry (`llava/data/base.py::BaseDataset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemChoice {
    /// The template default, `no_system_prompt: true` (empty), or a fixed `system_prompt`.
    Fixed(SystemPrompt),
    /// A `system_prompt` list. VILA draws one per `__getitem__` with `random.choice`, from
    /// the dataloader worker's unseeded state; we pick from a hash of the seed and the
    /// sample index instead, so the choice is reproducible.
    OneOf(Vec<String>),
}

/// One dataset file of the mixture, loaded.
#[derive(Debug)]
pub struct DatasetFile {
    /// Registry name.
    pub name: String,
    /// The JSON / JSONL file.
    pub data_path: PathBuf,
    /// Root that image paths are joined to.
    pub media_dir: Option<PathBuf>,
    /// System prompt of the entry.
    pub system: SystemChoice,
    /// Every record, in file order.
    pub records: Vec<Record>,
}

/// One element of the mixture: a dataset file padded, subset and repeated.
#[derive(Debug)]
struct Part {
    file: Arc<DatasetFile>,
    /// Record index of each sample of one repetition (padding and subset applied).
    index_map: Vec<usize>,
    repeat: usize,
    subset: Option<String>,
}

impl Part {
    fn len(&self) -> usize {
        self.index_map.len() * self.repeat
    }
}

/// A sample of the set, borrowed.
#[derive(Debug, Clone)]
pub struct SampleRef<'a> {
    /// Index in the concatenated mixture (what the sampler hands out).
    pub index: usize,
    /// Mixture element it belongs to.
    pub part: usize,
    /// Registry name of its dataset.
    pub dataset: &'a str,
    /// Its dataset file.
    pub file: &'a Path,
    /// Its record's index in the file (0-based; the line for `.jsonl`).
    pub record_index: usize,
    /// The record.
    pub record: &'a Record,
    /// The dataset's media root.
    pub media_dir: Option<&'a Path>,
    /// The system prompt this sample is rendered with.
    pub system: SystemPrompt,
}

impl SampleRef<'_> {
    /// The record's image files: `os.path.join(media_dir, path)` as VILA builds them.
    pub fn image_paths(&self) -> Vec<PathBuf> {
        self.record
            .images
            .iter()
            .map(|p| match self.media_dir {
                Some(dir) => dir.join(p),
                None => PathBuf::from(p),
            })
            .collect()
    }
}

/// All samples of a `DATA_MIXTURE`, in VILA's order.
#[derive(Debug)]
pub struct TrainingSet {
    mixture: String,
    geometry: BatchGeometry,
    seed: u64,
    parts: Vec<Part>,
    /// First global index of each part.
    offsets: Vec<usize>,
    len: usize,
    padding: PaddingReport,
}

impl TrainingSet {
    /// Loads `registry_file` and builds the set of `data_mixture` (see the module docs).
    pub fn open(
        registry_file: &Path,
        data_mixture: &str,
        options: &OpenOptions,
    ) -> Result<TrainingSet, DataError> {
        let registry = Registry::load(registry_file)?;
        Self::from_registry(&registry, data_mixture, options)
    }

    /// Builds the set of `data_mixture` from a loaded registry (for instance several files
    /// merged like `VILA_DATASETS` with [`Registry::load_many`]).
    pub fn from_registry(
        registry: &Registry,
        data_mixture: &str,
        options: &OpenOptions,
    ) -> Result<TrainingSet, DataError> {
        let mixtures = match &options.mixtures_file {
            Some(path) => Some(Mixtures::load(path)?),
            None => None,
        };
        let items = parse_mixture(data_mixture, mixtures.as_ref())?;

        for item in &items {
            if !registry.contains(&item.name) {
                let mut known: Vec<String> = registry.names().map(str::to_string).collect();
                known.sort();
                return Err(DataError::UnknownDataset {
                    mixture: data_mixture.to_string(),
                    name: item.name.clone(),
                    registries: registry.sources().to_vec(),
                    known,
                });
            }
        }
        let registry_file = |name: &str| {
            registry
                .source_of(name)
                .map_or_else(|| PathBuf::from("<in-memory registry>"), Path::to_path_buf)
        };
        for item in &items {
            let entry_error = |message: String| DataError::Entry {
                registry: registry_file(&item.name),
                name: item.name.clone(),
                message,
            };
            let Some(entry) = registry.get(&item.name) else {
                return Err(entry_error(format!(
                    "target {} has no data_path; only LLaVADataset JSON datasets can be trained on",
                    registry.target(&item.name).unwrap_or("?")
                )));
            };
            if !entry.is_llava_dataset() {
                return Err(entry_error(format!(
                    "target {} is not {}; only LLaVADataset JSON datasets can be trained on",
                    entry.target,
                    registry::LLAVA_TARGET
                )));
            }
            if entry.is_video() {
                return Err(entry_error(
                    "is_video: video datasets are not supported by this trainer".to_string(),
                ));
            }
            if item.subset.is_some() && options.slice_folder.is_none() {
                return Err(entry_error(format!(
                    "the mixture asks for subset \"{}\" but no slice folder (VILA_SLICE_FOLDER) was given",
                    item.subset.as_deref().unwrap_or_default()
                )));
            }
        }

        let validate_options = ValidateOptions {
            slice_folder: options.slice_folder.clone(),
            ..ValidateOptions::default()
        };
        validate_with(registry, &items, &validate_options)?;

        let mut files: HashMap<&str, Arc<DatasetFile>> = HashMap::new();
        for item in &items {
            if files.contains_key(item.name.as_str()) {
                continue;
            }
            // Both checked above.
            let Some(entry) = registry.get(&item.name) else {
                continue;
            };
            let records = read_records(&entry.data_path)?;
            let system = system_choice(&entry.extra).map_err(|message| DataError::Entry {
                registry: registry_file(&item.name),
                name: item.name.clone(),
                message,
            })?;
            files.insert(
                item.name.as_str(),
                Arc::new(DatasetFile {
                    name: item.name.clone(),
                    data_path: entry.data_path.clone(),
                    media_dir: entry.media_dir.clone(),
                    system,
                    records,
                }),
            );
        }

        let global_batch = options.geometry.global_batch();
        let mut rng = PyRandom::new(u128::from(options.seed));
        let mut parts = Vec::with_capacity(items.len());
        let mut report = Vec::with_capacity(items.len());
        for item in &items {
            let Some(file) = files.get(item.name.as_str()) else {
                continue;
            };
            let padded = pad_to_global_batch(file.records.len(), global_batch, &mut rng);
            let padded_len = padded.len();
            let index_map = match (&item.subset, &options.slice_folder) {
                (Some(subset), Some(folder)) => apply_subset(folder, subset, &item.name, padded)?,
                _ => padded,
            };
            let part = Part {
                file: Arc::clone(file),
                index_map,
                repeat: item.repeat,
                subset: item.subset.clone(),
            };
            report.push(DatasetPadding {
                name: item.name.clone(),
                records: file.records.len(),
                padded: padded_len,
                after_subset: part.index_map.len(),
                repeat: item.repeat,
                samples: part.len(),
            });
            parts.push(part);
        }

        let mut offsets = Vec::with_capacity(parts.len());
        let mut len = 0usize;
        for part in &parts {
            offsets.push(len);
            len += part.len();
        }
        let padding = PaddingReport {
            global_batch,
            before: report.iter().map(|d| d.records * d.repeat).sum(),
            after: len,
            datasets: report,
        };
        for d in &padding.datasets {
            tracing::info!(
                dataset = %d.name,
                records = d.records,
                padded = d.padded,
                after_subset = d.after_subset,
                repeat = d.repeat,
                samples = d.samples,
                "training dataset"
            );
        }
        tracing::info!("{padding}");
        Ok(TrainingSet {
            mixture: data_mixture.to_string(),
            geometry: options.geometry,
            seed: options.seed,
            parts,
            offsets,
            len,
            padding,
        })
    }

    /// The `DATA_MIXTURE` string.
    pub fn mixture(&self) -> &str {
        &self.mixture
    }

    /// The batch shape the set was padded for.
    pub fn geometry(&self) -> BatchGeometry {
        self.geometry
    }

    /// The seed the padding was drawn with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Samples in one epoch (after padding).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set has no samples.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Samples per mixture element, in order: VILA's `training_args.sample_lens`, which its
    /// sampler is built from.
    pub fn sample_lens(&self) -> Vec<usize> {
        self.parts.iter().map(Part::len).collect()
    }

    /// Sizes through padding, subset and repetition, and the line to log.
    pub fn padding(&self) -> &PaddingReport {
        &self.padding
    }

    /// The loaded dataset file of mixture element `part`.
    pub fn dataset_file(&self, part: usize) -> Option<&DatasetFile> {
        self.parts.get(part).map(|p| p.file.as_ref())
    }

    /// The subset of mixture element `part`, if any.
    pub fn subset(&self, part: usize) -> Option<&str> {
        self.parts.get(part).and_then(|p| p.subset.as_deref())
    }

    /// Sample `index` of the concatenated mixture, or None past the end.
    pub fn sample(&self, index: usize) -> Option<SampleRef<'_>> {
        if index >= self.len {
            return None;
        }
        let part = self.offsets.partition_point(|&o| o <= index) - 1;
        let p = &self.parts[part];
        let local = index - self.offsets[part];
        let record_index = p.index_map[local % p.index_map.len()];
        let file = p.file.as_ref();
        let system = match &file.system {
            SystemChoice::Fixed(s) => s.clone(),
            SystemChoice::OneOf(list) => {
                let pick = splitmix64(self.seed ^ splitmix64(index as u64)) as usize % list.len();
                SystemPrompt::Custom(list[pick].clone())
            }
        };
        Some(SampleRef {
            index,
            part,
            dataset: &file.name,
            file: &file.data_path,
            record_index,
            record: &file.records[record_index],
            media_dir: file.media_dir.as_deref(),
            system,
        })
    }
}

/// The entry's system prompt: `no_system_prompt` (empty system turn) or `system_prompt`
/// (a string, or a list of strings); both at once is rejected by validation already.
fn system_choice(extra: &serde_yaml::Mapping) -> Result<SystemChoice, String> {
    if extra.get("no_system_prompt").and_then(Yaml::as_bool) == Some(true) {
        return Ok(SystemChoice::Fixed(SystemPrompt::Empty));
    }
    match extra.get("system_prompt") {
        None | Some(Yaml::Null) => Ok(SystemChoice::Fixed(SystemPrompt::Default)),
        Some(Yaml::String(s)) => Ok(SystemChoice::Fixed(SystemPrompt::Custom(s.clone()))),
        Some(Yaml::Sequence(list)) if !list.is_empty() => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "system_prompt list holds a non-string".to_string())
            })
            .collect::<Result<Vec<_>, _>>()
            .map(SystemChoice::OneOf),
        Some(_) => Err("system_prompt must be a string or a non-empty list of strings".to_string()),
    }
}

/// `build_dataset`'s subset: keep `sorted(set(range(len)) - set(ignore))` of the padded
/// dataset, where `ignore` is the JSON list in `<folder>/<subset>/<name>.json`.
fn apply_subset(
    folder: &Path,
    subset: &str,
    name: &str,
    padded: Vec<usize>,
) -> Result<Vec<usize>, DataError> {
    let path = folder.join(subset).join(format!("{name}.json"));
    let fail = |message: String| DataError::Subset {
        path: path.clone(),
        name: name.to_string(),
        subset: subset.to_string(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let ignore: Vec<serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| fail(format!("expected a JSON list of indices: {e}")))?;
    let mut drop = vec![false; padded.len()];
    for v in ignore {
        let i = v
            .as_u64()
            .ok_or_else(|| fail(format!("{v} is not an index")))?;
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| drop.get_mut(i)) {
            *slot = true;
        }
    }
    Ok(padded
        .into_iter()
        .zip(drop)
        .filter(|(_, d)| !d)
        .map(|(r, _)| r)
        .collect())
}

/// SplitMix64's output function (Steele, Lea, Flood 2014), used only to pick from a
/// `system_prompt` list.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
