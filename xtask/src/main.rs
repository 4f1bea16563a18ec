//! `cargo xtask <command>`: the project's automation, written as plain Rust functions (no shell
//! scripts), one module per command. `cargo xtask demo` is the main job; `cargo xtask test` is
//! what CI runs.

mod caption;
mod dataset;
mod demo;
mod eval;
mod fixtures;
mod register;
mod system;
mod test;
mod train;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Project automation for the WTS/NVILA LoRA workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the small synthetic WTS + BDD_PC_5K tree (real H.264 MP4s, every JSON variant).
    Fixtures(fixtures::Args),
    /// Convert a raw WTS / BDD_PC_5K tree into a VILA-format dataset.
    Dataset(dataset::Args),
    /// Register a dataset in a VILA registry YAML (other entries are kept).
    Register(register::RegisterArgs),
    /// Validate the datasets a DATA_MIXTURE selects, before anything trains.
    Validate(register::ValidateArgs),
    /// Score a Track 2 submission like the official `metrics_all.py`; prints one JSON object.
    Eval(eval::Args),
    /// The main job on the embedded tiny data: fixtures -> dataset -> register -> validate ->
    /// a caption from the tiny NVILA checkpoint.
    Demo(demo::Args),
    /// Install missing system packages (ffmpeg, wordnet-base), then run every test. CI runs this.
    Test(test::Args),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Fixtures(args) => fixtures::run(&args),
        Command::Dataset(args) => dataset::run(&args),
        Command::Register(args) => register::run_register(&args),
        Command::Validate(args) => register::run_validate(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Test(args) => test::run(&args),
    }
}

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
