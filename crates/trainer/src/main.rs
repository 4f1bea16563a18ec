//! `trainer`: LoRA fine-tuning of NVILA-Lite on a VILA data mixture.
//!
//! ```text
//! trainer --model-path DIR --registry FILE --data-mixture NAME --output-dir DIR
//!         [--max-steps N] [--device cpu|cuda:0] [--config FILE] [--<parameter> VALUE …] [--dry-run]
//! ```
//!
//! Parameters come from defaults < `--config` (YAML/JSON) < environment (`DATA_MIXTURE`,
//! `GLOBAL_TRAIN_BATCH_SIZE`, `GRADIENT_ACCUMULATION_STEPS`) < flags. Running the same command
//! again resumes from the newest complete checkpoint; a finished run is skipped.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use trainer::config::{ParameterArgs, TrainConfig};
use trainer::run::{RunOptions, RunOutcome, train};

#[derive(Parser, Debug)]
#[command(
    name = "trainer",
    about = "LoRA fine-tuning of NVILA-Lite with HF/VILA semantics (resumable; PEFT adapters)",
    after_help = "Re-running the same command resumes from the newest complete checkpoint-N in \
                  --output-dir (same learning rate, data order and RNG); if --output-dir holds \
                  config.json the run is finished and nothing is retrained."
)]
struct Cli {
    #[command(flatten)]
    params: ParameterArgs,
    /// Print the plan (samples, steps, warmup, trainable parameters, memory estimate) and stop.
    #[arg(long)]
    dry_run: bool,
    /// Start the adapters from this PEFT adapter folder instead of PEFT's random init.
    #[arg(long, value_name = "DIR")]
    init_adapter: Option<PathBuf>,
    /// Test hook: abort the process (as SIGKILL would) after this many bytes of checkpoint
    /// files, to prove that resuming survives a crash in the middle of a save.
    #[arg(long, hide = true, value_name = "BYTES")]
    crash_after_checkpoint_bytes: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = TrainConfig::resolve(cli.params.config.as_deref(), &env, &cli.params.overrides)
        .context("invalid training configuration")?;
    let options = RunOptions {
        init_adapter: cli.init_adapter,
        dry_run: cli.dry_run,
        checkpoint_sink: cli
            .crash_after_checkpoint_bytes
            .map(|n| std::sync::Arc::new(trainer::checkpoint::AbortAfter::new(n)) as _),
        ..RunOptions::default()
    };
    match train(&config, &options).context("training failed")? {
        RunOutcome::AlreadyFinished => eprintln!(
            "trainer: {} holds a finished run (config.json); nothing to do",
            config.output_dir.display()
        ),
        RunOutcome::Planned(plan) => println!("{plan}"),
        RunOutcome::Stopped(step) => eprintln!("trainer: stopped at step {step}"),
        RunOutcome::Finished { steps, losses } => eprintln!(
            "trainer: finished {steps} steps (last loss {:.4}); adapter in {}",
            losses.last().copied().unwrap_or(f64::NAN),
            config.output_dir.display()
        ),
    }
    Ok(())
}
