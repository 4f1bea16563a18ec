//! `cargo xtask fixtures`: writes the small synthetic WTS + BDD_PC_5K tree (real H.264 MP4 files,
//! every JSON layout variant the converter accepts). Same input, same bytes.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the tree (it gets `WTS/`, `BDD_PC_5k/` and `test_part/`).
    #[arg(long, default_value = "target/fixtures/raw")]
    pub out: PathBuf,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::system::ensure_packages()?;
    let summary = write(&args.out)?;
    println!(
        "wrote {} videos for {} scenarios under {}",
        summary.videos,
        summary.scenarios.len(),
        args.out.display()
    );
    Ok(())
}

/// Writes the synthetic tree into `out` and returns what was written.
pub fn write(out: &std::path::Path) -> anyhow::Result<wts_dataset::synth::SynthSummary> {
    wts_dataset::synth::write_synthetic_tree(out)
        .with_context(|| format!("writing the synthetic tree into {}", out.display()))
}
