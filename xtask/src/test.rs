//! `cargo xtask test`: the README's test command and what `.ci/run` calls.
//!
//! 1. installs the system packages tests need (ffmpeg, wordnet-base) when missing;
//! 2. `cargo test --workspace` (CPU only: burn's `flex` backend);
//! 3. `cargo check` of the CUDA build (`gpu-check --features cuda`), which proves the offline
//!    CUDA build still resolves and compiles without downloading LLVM (no GPU needed).

use std::process::Command;

use anyhow::{Context, bail};

#[derive(clap::Args)]
pub struct Args {
    /// Skip the `cargo check --features cuda` step.
    #[arg(long)]
    pub no_cuda_check: bool,
    /// Extra arguments passed to `cargo test` (after `--workspace`).
    #[arg(trailing_var_arg = true)]
    pub cargo_args: Vec<String>,
}

/// Runs `cargo ARGS` in the workspace root, failing on a non-zero exit.
pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(crate::project_root());
    eprintln!("$ cargo {}", args.join(" "));
    let status = cmd.status().context("running cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::system::ensure_packages()?;
    let mut test = vec!["test", "--workspace"];
    test.extend(args.cargo_args.iter().map(String::as_str));
    cargo(&test)?;
    if !args.no_cuda_check {
        // One invocation, so every CUDA crate resolves the same feature set (one cubecl build).
        cargo(&[
            "check",
            "--package",
            "gpu-check",
            "--package",
            "nvila-model",
            "--package",
            "trainer",
            "--package",
            "infer-cli",
            "--features",
            "cuda",
        ])?;
    }
    Ok(())
}
