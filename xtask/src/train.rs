//! The demo's training and adapter steps: the `trainer` library on the tiny checkpoint, then the
//! real `infer-cli` binary with the adapter it wrote.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use trainer::config::TrainConfig;
use trainer::run::{RunOptions, RunOutcome, train};

/// Trains LoRA adapters (r 4, alpha 8) on the tiny checkpoint for `steps` steps into `out`,
/// checkpointing every 2 steps. A finished run in `out` is left as it is (VILA's rule).
pub fn train_demo(
    model: &Path,
    registry: &Path,
    mixture: &str,
    out: &Path,
    steps: u64,
) -> anyhow::Result<()> {
    let overrides: Vec<(String, String)> = [
        ("model_path", model.display().to_string()),
        ("registry", registry.display().to_string()),
        ("data_mixture", mixture.to_string()),
        ("output_dir", out.display().to_string()),
        ("device", "cpu".into()),
        ("dtype", "f32".into()),
        ("lora_enable", "true".into()),
        ("lora_llm", "true".into()),
        ("lora_r", "4".into()),
        ("lora_alpha", "8".into()),
        ("learning_rate", "1e-3".into()),
        ("warmup_ratio", "0.03".into()),
        ("global_train_batch_size", "2".into()),
        ("max_steps", steps.to_string()),
        ("save_steps", "2".into()),
        ("model_max_length", "1024".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = TrainConfig::resolve(None, &HashMap::new(), &overrides)?;
    match train(&config, &RunOptions::default())? {
        RunOutcome::AlreadyFinished => eprintln!(
            "      {} already holds a finished run (config.json): kept",
            out.display()
        ),
        RunOutcome::Finished { steps, losses } => eprintln!(
            "      {steps} steps, losses {:?}",
            losses.iter().map(|l| format!("{l:.3}")).collect::<Vec<_>>()
        ),
        other => bail!("unexpected training outcome {other:?}"),
    }
    Ok(())
}

/// The `infer-cli` binary: `XTASK_INFER_CLI` if set (tests point it at the binary their build
/// made), else built with cargo (a no-op when up to date) next to this `xtask` binary.
fn infer_cli() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("XTASK_INFER_CLI") {
        return Ok(PathBuf::from(path));
    }
    crate::test::cargo(&["build", "--quiet", "--package", "infer-cli"])?;
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let dir = exe.parent().context("the xtask binary has no folder")?;
    Ok(dir.join(format!("infer-cli{}", std::env::consts::EXE_SUFFIX)))
}

/// `infer-cli generate --model MODEL --adapter ADAPTER --image IMAGE --prompt PROMPT`; returns
/// its answer.
pub fn generate_with_adapter(
    model: &Path,
    adapter: &Path,
    image: &Path,
    prompt: &str,
) -> anyhow::Result<String> {
    let bin = infer_cli()?;
    let out = Command::new(&bin)
        .arg("generate")
        .arg("--model")
        .arg(model)
        .arg("--adapter")
        .arg(adapter)
        .arg("--image")
        .arg(image)
        .args(["--prompt", prompt, "--max-new-tokens", "24"])
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} generate --adapter failed ({}):\n{}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
