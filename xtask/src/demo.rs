//! `cargo xtask demo`: the main job on the embedded tiny data: synthetic raw tree -> VILA
//! dataset -> registry YAML -> validation of the mixture -> a caption from the tiny random NVILA
//! checkpoint (`fixtures/golden/tiny-nvila`, real HF layout; its words are random because its
//! weights are) -> LoRA training of that checkpoint on the dataset for a few steps on the CPU
//! (`target/demo/run/`, with its `checkpoint-N/` folders) -> `infer-cli generate --adapter` with
//! the new adapter.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Output folder.
    #[arg(long, default_value = "target/demo")]
    pub out: PathBuf,
}

/// Dataset name used by the demo (and its DATA_MIXTURE).
const NAME: &str = "WTS";

pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::system::ensure_packages()?;
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;

    eprintln!("[1/7] fixtures: synthetic WTS + BDD_PC_5K tree");
    let raw = out.join("raw");
    let synth = crate::fixtures::write(&raw)?;

    eprintln!("[2/7] dataset: raw tree -> VILA format");
    let dataset_args = crate::dataset::Args {
        wts: Some(synth.wts_root.clone()),
        bdd: Some(synth.bdd_root.clone()),
        split: "train".into(),
        out: out.join("data"),
        name: NAME.into(),
        frames: "middle".into(),
        views: "both".into(),
        main_view_csv: None,
        boxes: true,
        crop: false,
        crop_scale: 1.5,
        multi_image: false,
        vqa: true,
        frame_folders: None,
        strict: false,
    };
    let report = crate::dataset::convert(&dataset_args)?;
    eprintln!(
        "      {} samples, {} images written, {} reused, {} skipped -> {}",
        report.samples,
        report.images_written,
        report.images_reused,
        report.skipped.len(),
        report.dataset_json.display()
    );

    eprintln!("[3/7] register: {NAME} in the registry YAML");
    let registry = out.join("registry").join("default.yaml");
    crate::register::register(&registry, NAME, &report.dataset_json, None)?;

    eprintln!("[4/7] validate: DATA_MIXTURE={NAME}");
    let validation = crate::register::validate(std::slice::from_ref(&registry), NAME, None)?;
    println!("{}", serde_json::to_string_pretty(&validation)?);

    eprintln!("[5/7] generate: a caption from the tiny NVILA checkpoint");
    let (image, prompt) = first_sample(&report.dataset_json)?;
    let caption = crate::caption::caption(&crate::caption::tiny_checkpoint(), &image, &prompt, 24)?;
    eprintln!(
        "      prompt: {prompt:?}\n      image:  {}\n      answer: {caption:?}",
        image.display()
    );
    eprintln!("[6/7] train: LoRA on the LLM, {TRAIN_STEPS} steps on the CPU");
    let run_dir = out.join("run");
    crate::train::train_demo(
        &crate::caption::tiny_checkpoint(),
        &registry,
        NAME,
        &run_dir,
        TRAIN_STEPS,
    )?;

    eprintln!("[7/7] infer-cli generate --adapter {}", run_dir.display());
    let answer = crate::train::generate_with_adapter(
        &crate::caption::tiny_checkpoint(),
        &run_dir,
        &image,
        &prompt,
    )?;
    eprintln!("      answer: {answer:?}");
    eprintln!(
        "demo done: dataset {}, registry {}, adapter {}",
        report.dataset_json.display(),
        registry.display(),
        run_dir.display()
    );
    Ok(())
}

/// Optimizer steps of the demo's training run.
const TRAIN_STEPS: u64 = 4;

/// The first record's image and its prompt (without the `<image>` tag).
fn first_sample(dataset_json: &std::path::Path) -> anyhow::Result<(PathBuf, String)> {
    let text = std::fs::read_to_string(dataset_json)
        .with_context(|| format!("reading {}", dataset_json.display()))?;
    let records: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", dataset_json.display()))?;
    let first = records
        .get(0)
        .with_context(|| format!("{} has no records", dataset_json.display()))?;
    let image = match &first["image"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .first()
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    anyhow::ensure!(
        !image.is_empty(),
        "{}: record 0 has no image",
        dataset_json.display()
    );
    let prompt = first["conversations"][0]["value"]
        .as_str()
        .unwrap_or_default()
        .replace("<image>\n", "")
        .replace("<image>", "");
    let media_dir = dataset_json.parent().unwrap_or(std::path::Path::new("."));
    Ok((media_dir.join(image), prompt.trim().to_string()))
}
