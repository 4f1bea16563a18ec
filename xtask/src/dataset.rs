//! `cargo xtask dataset`: the team's `tools/make_vila_dataset.py`, as a command. Raw WTS /
//! BDD_PC_5K trees in; `<out>/<NAME>_dataset/{dataset.json, images/, manifest.json, report.json}`
//! out.

use std::path::PathBuf;

use anyhow::bail;
use wts_dataset::convert::{ConvertConfig, ConvertReport, FramePick, ViewFilter};
use wts_dataset::layout::Split;

#[derive(clap::Args)]
pub struct Args {
    /// WTS root (holds `videos/` and `annotations/`).
    #[arg(long)]
    pub wts: Option<PathBuf>,
    /// BDD_PC_5K root (holds `videos/` and `annotations/`).
    #[arg(long)]
    pub bdd: Option<PathBuf>,
    /// Split to convert: train, val or test (test: prompts without answers, for inference).
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Output folder; the dataset goes to `<out>/<NAME>_dataset/`.
    #[arg(long)]
    pub out: PathBuf,
    /// Dataset name (the registry and DATA_MIXTURE use it).
    #[arg(long)]
    pub name: String,
    /// Which frame(s) per phase: start, middle, end, bbox (the phase's annotated first frame,
    /// as CityLLaVA) or evenly:N.
    #[arg(long, default_value = "middle")]
    pub frames: String,
    /// Views: overhead, vehicle or both.
    #[arg(long, default_value = "both")]
    pub views: String,
    /// Keep only the overhead views listed in this CSV (`view_used_as_main_reference…csv`).
    #[arg(long)]
    pub main_view_csv: Option<PathBuf>,
    /// Draw the pedestrian (green) and vehicle (blue) boxes on the frame.
    #[arg(long)]
    pub boxes: bool,
    /// Crop around both boxes (each ×1.2, union squared, ×crop-scale).
    #[arg(long)]
    pub crop: bool,
    /// Crop enlargement factor.
    #[arg(long, default_value_t = 1.5)]
    pub crop_scale: f64,
    /// Two images per sample: the full frame and the crop (train with image_aspect_ratio=resize).
    #[arg(long)]
    pub multi_image: bool,
    /// Add VQA multiple-choice samples.
    #[arg(long)]
    pub vqa: bool,
    /// Read frames from pre-extracted frame folders under this root instead of videos.
    #[arg(long)]
    pub frame_folders: Option<PathBuf>,
    /// Fail (non-zero exit) if any item was skipped.
    #[arg(long)]
    pub strict: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::system::ensure_packages()?;
    let report = convert(args)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Maps the command line onto the converter's configuration and runs it.
pub fn convert(args: &Args) -> anyhow::Result<ConvertReport> {
    let mut cfg = ConvertConfig::new(args.out.clone(), args.name.clone());
    cfg.wts_root = args.wts.clone();
    cfg.bdd_root = args.bdd.clone();
    cfg.split = args
        .split
        .parse::<Split>()
        .map_err(|e| anyhow::anyhow!("--split: {e}"))?;
    cfg.frames = parse_frames(&args.frames)?;
    cfg.views = match args.views.as_str() {
        "overhead" => ViewFilter::Overhead,
        "vehicle" => ViewFilter::Vehicle,
        "both" => ViewFilter::Both,
        other => bail!("--views: expected overhead, vehicle or both, got {other:?}"),
    };
    cfg.main_view_csv = args.main_view_csv.clone();
    cfg.draw_boxes = args.boxes;
    cfg.crop = args.crop || args.multi_image;
    cfg.crop_scale = args.crop_scale;
    cfg.multi_image = args.multi_image;
    cfg.include_vqa = args.vqa;
    cfg.frame_folders = args.frame_folders.clone();
    cfg.strict = args.strict;
    if cfg.wts_root.is_none() && cfg.bdd_root.is_none() {
        bail!("give at least one of --wts and --bdd");
    }
    Ok(wts_dataset::convert::convert(&cfg)?)
}

fn parse_frames(s: &str) -> anyhow::Result<FramePick> {
    Ok(match s {
        "start" => FramePick::Start,
        "middle" => FramePick::Middle,
        "end" => FramePick::End,
        "bbox" => FramePick::BboxAnnotated,
        _ => match s.strip_prefix("evenly:").map(str::parse::<u32>) {
            Some(Ok(n)) if n > 0 => FramePick::Evenly(n),
            _ => {
                bail!("--frames: expected start, middle, end, bbox or evenly:N (N > 0), got {s:?}")
            }
        },
    })
}
