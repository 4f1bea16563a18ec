//! `cargo xtask demo`: the main job on the embedded tiny data. Today: synthetic raw tree ->
//! VILA dataset -> registry YAML -> validation of the mixture. Later issues extend it with
//! LoRA training and generation.

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

    eprintln!("[1/4] fixtures: synthetic WTS + BDD_PC_5K tree");
    let raw = out.join("raw");
    let synth = crate::fixtures::write(&raw)?;

    eprintln!("[2/4] dataset: raw tree -> VILA format");
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

    eprintln!("[3/4] register: {NAME} in the registry YAML");
    let registry = out.join("registry").join("default.yaml");
    crate::register::register(&registry, NAME, &report.dataset_json, None)?;

    eprintln!("[4/4] validate: DATA_MIXTURE={NAME}");
    let validation = crate::register::validate(std::slice::from_ref(&registry), NAME, None)?;
    println!("{}", serde_json::to_string_pretty(&validation)?);
    eprintln!(
        "demo done: dataset {}, registry {}",
        report.dataset_json.display(),
        registry.display()
    );
    Ok(())
}
