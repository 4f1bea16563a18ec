//! `cargo xtask register` and `cargo xtask validate`: what the team did by hand-editing VILA's
//! `llava/data/registry/datasets/default.yaml` and then hoping `DATA_MIXTURE` was right.

use std::path::{Path, PathBuf};

use anyhow::Context;
use registry::{DatasetEntry, Mixtures, Registry};

#[derive(clap::Args)]
pub struct RegisterArgs {
    /// The registry YAML to create or update (other entries are kept).
    #[arg(long)]
    pub registry: PathBuf,
    /// Dataset name, as `DATA_MIXTURE` will refer to it.
    #[arg(long)]
    pub name: String,
    /// The dataset JSON (`<out>/<NAME>_dataset/dataset.json`).
    #[arg(long)]
    pub data_path: PathBuf,
    /// The folder media paths are relative to (default: the folder of `data_path`).
    #[arg(long)]
    pub media_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Registry YAML files (VILA_DATASETS style: later files add entries).
    #[arg(long, required = true, value_delimiter = ',')]
    pub registry: Vec<PathBuf>,
    /// The mixture, e.g. `WTS+BDD` or `WTS*2` (VILA's DATA_MIXTURE syntax).
    #[arg(long, env = "DATA_MIXTURE")]
    pub mixture: String,
    /// A mixtures YAML expanding mixture names (VILA's `mixtures.yaml`).
    #[arg(long)]
    pub mixtures: Option<PathBuf>,
}

pub fn run_register(args: &RegisterArgs) -> anyhow::Result<()> {
    register(
        &args.registry,
        &args.name,
        &args.data_path,
        args.media_dir.as_deref(),
    )?;
    println!("registered {} in {}", args.name, args.registry.display());
    Ok(())
}

/// Adds or replaces `name` in the registry at `registry_path`, with absolute paths (VILA joins
/// `media_dir` with each record's relative media path).
pub fn register(
    registry_path: &Path,
    name: &str,
    data_path: &Path,
    media_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let data_path = std::path::absolute(data_path)
        .with_context(|| format!("resolving {}", data_path.display()))?;
    let media_dir = match media_dir {
        Some(dir) => {
            std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?
        }
        None => data_path
            .parent()
            .map(Path::to_path_buf)
            .with_context(|| format!("{} has no parent folder", data_path.display()))?,
    };
    let mut reg = if registry_path.exists() {
        Registry::load(registry_path)?
    } else {
        Registry::default()
    };
    reg.upsert(name, DatasetEntry::llava(data_path, media_dir));
    reg.save(registry_path)?;
    Ok(())
}

pub fn run_validate(args: &ValidateArgs) -> anyhow::Result<()> {
    let report = validate(&args.registry, &args.mixture, args.mixtures.as_deref())?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Loads the registries, parses the mixture as VILA does and validates every dataset in it.
pub fn validate(
    registries: &[PathBuf],
    mixture: &str,
    mixtures: Option<&Path>,
) -> anyhow::Result<registry::ValidationReport> {
    let reg = Registry::load_many(registries)?;
    let mixtures = mixtures.map(Mixtures::load).transpose()?;
    let items = registry::parse_mixture(mixture, mixtures.as_ref())?;
    Ok(registry::validate(&reg, &items)?)
}
