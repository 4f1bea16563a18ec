//! `infer-cli`: NVILA-Lite inference from the command line, on an HF-layout checkpoint folder
//! (`config.json`, `llm/`, `vision_tower/`, `mm_projector/`).
//!
//! ```text
//! infer-cli generate --model DIR --image a.jpg --prompt "Describe the image." [--json]
//! infer-cli score    --model DIR --image a.jpg --prompt "Describe the image." --response "A cat."
//! infer-cli generate --model DIR --adapter RUN_DIR --image a.jpg --prompt "Describe the image."
//! ```
//!
//! - `generate` follows VILA's inference path (`generate_content`) and prints the answer as it
//!   is generated, or one JSON object with `--json`.
//! - `score` follows VILA's training path and prints one JSON object with the per-token log
//!   probabilities of the response.
//! - `--adapter DIR` (both commands) loads a PEFT LoRA adapter folder (`adapter_config.json` +
//!   `adapter_model.safetensors`, optionally `non_lora_trainables.safetensors` / `.bin` with
//!   projector weights) and merges it into the LLM's weights at load, `W + (α/r)·BA`, which is
//!   what PEFT's `merge_and_unload` serves; see [`adapter`].
//!
//! Exit status: 0 on success, 1 on a runtime error (message on stderr naming the file or
//! argument), 2 on a command-line usage error.

mod adapter;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::tensor::{DType, Device};
use clap::{Args, Parser, Subcommand, ValueEnum};
use image::RgbImage;
use nvila_model::NvilaModel;
use nvila_model::generate::GenerateOptions;
use nvila_model::processor::{ImageAspectRatio, load_image};
use serde_json::json;

use crate::adapter::Adapter;

/// The `--adapter` paragraph of both commands' long help.
macro_rules! adapter_help {
    () => {
        "With --adapter DIR, a PEFT LoRA adapter folder (adapter_config.json + \
adapter_model.safetensors, as PEFT's save_pretrained or the trainer writes it; a run's output \
folder or one of its checkpoint-N/ folders) is merged into the LLM's weights at load: each \
adapted projection becomes W + (alpha/r)*B*A (alpha/sqrt(r) with rsLoRA), what PEFT's \
merge_and_unload serves, so the adapter costs nothing per token. Projector weights in \
non_lora_trainables.safetensors (or VILA's non_lora_trainables.bin, read without executing the \
pickle) beside it replace the checkpoint's. LoRA on the vision tower or the projector, DoRA, \
modules_to_save, and factors that do not fit the model are refused; a base_model_name_or_path \
naming another model only warns."
    };
}

const GENERATE_ABOUT: &str = concat!(
    "\
Answer a prompt about images, streaming the answer to stdout.

Follows VILA's inference path (`LlavaMetaForCausalLM.generate_content`): one image is tiled \
(dynamic tiling, up to the checkpoint's max_tiles), several images are each resized to 448 \
(the vision tower's tile size) without tiling. The prompt gets VILA's default system prompt and \
the generation prompt; generation stops at <|im_end|> or eos, and the answer is decoded without \
special tokens and stripped of surrounding whitespace.

Images go where the prompt has `<image>` tags (one tag per image), or all before the text when \
the prompt has none.

",
    adapter_help!()
);

const SCORE_ABOUT: &str = concat!(
    "\
Score a response: log probabilities of its tokens given the prompt and images.

Follows VILA's training path (the dataset + collator preprocessing) with the checkpoint's \
`image_aspect_ratio` (override: --image-aspect-ratio): under `dynamic` every image is tiled, \
also when there are several (unlike `generate`, which follows the inference path); under \
`resize` each image is resized to one tile. The scored tokens are those the training labels \
keep (the response and its closing <|im_end|>).

",
    adapter_help!(),
    "

Prints one JSON object: {\"token_ids\": [...], \"logprobs\": [...], \"sum_logprob\": x}."
);

/// NVILA-Lite inference: `generate` (VILA's inference path) and `score` (VILA's training path).
#[derive(Parser, Debug)]
#[command(name = "infer-cli", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Answer a prompt about images (VILA's inference path: one image is tiled, several are
    /// each resized to 448 without tiling).
    #[command(long_about = GENERATE_ABOUT)]
    Generate(GenerateArgs),
    /// Log probabilities of a response (VILA's training path with the checkpoint's
    /// image_aspect_ratio: under `dynamic` every image is tiled, also when there are several).
    #[command(long_about = SCORE_ABOUT)]
    Score(ScoreArgs),
}

/// Options shared by both subcommands.
#[derive(Args, Debug)]
struct ModelArgs {
    /// Checkpoint folder (top-level config.json with llm/, vision_tower/, mm_projector/).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors), merged into
    /// the LLM's weights at load (W + (alpha/r)*B*A, as PEFT's merge_and_unload).
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,
    /// Image files (PNG or JPEG), in prompt order; repeat the flag or list several paths.
    #[arg(long = "image", value_name = "PATH", num_args = 1..)]
    images: Vec<PathBuf>,
    /// The user prompt; `<image>` tags place the images (else they all go first).
    #[arg(long)]
    prompt: String,
    /// `cpu` (burn's flex backend) or `cuda:N` (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    device: Device,
    /// Compute dtype; default: the checkpoint's own.
    #[arg(long, value_enum)]
    dtype: Option<Dtype>,
}

#[derive(Args, Debug)]
struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 512)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 = greedy (VILA's default).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling threshold in [0, 1]; used only when sampling.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Seed of the sampler: the same seed gives the same answer.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object {"text", "token_ids", "prompt_tokens", "new_tokens", "seconds"}
    /// instead of streaming the text. `prompt_tokens` counts the LLM's input positions (image
    /// features included); `seconds` covers prompt preparation and generation, not loading.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ScoreArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The response to score (the assistant turn).
    #[arg(long)]
    response: String,
    /// Override the checkpoint's image_aspect_ratio.
    #[arg(long, value_enum, value_name = "MODE")]
    image_aspect_ratio: Option<AspectArg>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Dtype {
    F32,
    Bf16,
}

impl Dtype {
    fn burn(self) -> DType {
        match self {
            Dtype::F32 => DType::F32,
            Dtype::Bf16 => DType::BF16,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum AspectArg {
    /// Dynamic tiling of every image.
    Dynamic,
    /// One resize per image.
    Resize,
}

impl From<AspectArg> for ImageAspectRatio {
    fn from(a: AspectArg) -> Self {
        match a {
            AspectArg::Dynamic => ImageAspectRatio::Dynamic,
            AspectArg::Resize => ImageAspectRatio::Resize,
        }
    }
}

fn parse_device(s: &str) -> Result<Device, String> {
    nvila_model::device::parse(s).map_err(|e| {
        if e.contains("`cuda` feature") {
            format!("{e} (cargo build -p infer-cli --features cuda)")
        } else {
            e
        }
    })
}

/// Checks the arguments, reads the adapter and the images (before the slow model load, so a bad
/// path fails fast), loads the model and merges the adapter into it.
fn load(args: &ModelArgs) -> anyhow::Result<(NvilaModel, Vec<RgbImage>)> {
    if !args.model.is_dir() {
        bail!(
            "--model {}: not a directory (expected a checkpoint folder with config.json, llm/, \
             vision_tower/, mm_projector/)",
            args.model.display()
        );
    }
    let adapter = match &args.adapter {
        Some(dir) => {
            let mut adapter = Adapter::read(dir)?;
            adapter.check_base_model(&args.model);
            for warning in &adapter.warnings {
                eprintln!("infer-cli: warning: {warning}");
            }
            Some(adapter)
        }
        None => None,
    };
    let images = args
        .images
        .iter()
        .map(|p| read_image(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let model = NvilaModel::from_checkpoint(&args.model, &args.device, args.dtype.map(Dtype::burn))
        .with_context(|| {
            format!(
                "--model {}: cannot load the checkpoint",
                args.model.display()
            )
        })?;
    let model = match adapter {
        Some(adapter) => adapter.apply(model)?,
        None => model,
    };
    Ok((model, images))
}

fn read_image(path: &Path) -> anyhow::Result<RgbImage> {
    if !path.is_file() {
        bail!("--image {}: no such file", path.display());
    }
    // The processor's loader: size limits checked from the header, errors name the file.
    load_image(path).context("--image")
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let opts = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
    };
    opts.validate().context("--temperature/--top-p")?;
    let (model, images) = load(&args.model)?;
    let start = Instant::now();
    let mut stdout = std::io::stdout().lock();
    let mut write_error = None;
    let streaming = !args.json;
    let out = model.generate_detailed(&args.model.prompt, &images, &opts, &mut |piece| {
        if streaming
            && write_error.is_none()
            && let Err(e) = stdout
                .write_all(piece.as_bytes())
                .and_then(|()| stdout.flush())
        {
            write_error = Some(e);
        }
    })?;
    let seconds = start.elapsed().as_secs_f64();
    if let Some(e) = write_error {
        return Err(e).context("writing to stdout");
    }
    if args.json {
        let value = json!({
            "text": out.text,
            "token_ids": out.token_ids,
            "prompt_tokens": out.prompt_tokens,
            "new_tokens": out.token_ids.len(),
            "seconds": seconds,
        });
        writeln!(stdout, "{value}").context("writing to stdout")?;
    } else {
        writeln!(stdout).context("writing to stdout")?;
    }
    Ok(())
}

fn score(args: &ScoreArgs) -> anyhow::Result<()> {
    let (model, images) = load(&args.model)?;
    let out = model.score(
        &args.model.prompt,
        &images,
        &args.response,
        args.image_aspect_ratio.map(ImageAspectRatio::from),
    )?;
    let value = json!({
        "token_ids": out.token_ids,
        "logprobs": out.logprobs,
        "sum_logprob": out.sum_logprob,
    });
    println!("{value}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Generate(args) => generate(args),
        Command::Score(args) => score(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("infer-cli: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
