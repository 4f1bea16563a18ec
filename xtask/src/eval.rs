//! `cargo xtask eval`: scores a Track 2 submission with the same inputs as the official
//! `metrics_all.py --predictions_file --ground_truth`, printing one JSON object on stdout.
//! Scripts depend on this interface; keep it stable.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The submission JSON (`{"<scenario or videoNNNN>": [{"labels": ["0"], "caption_pedestrian", "caption_vehicle"}]}`).
    #[arg(long)]
    pub pred: PathBuf,
    /// Ground truth: a folder of caption annotation files as the dataset ships them (or, with
    /// `--vqa`, the VQA ground-truth JSON).
    #[arg(long, required_unless_present = "gt_wts")]
    pub gt: Option<PathBuf>,
    /// Score VQA accuracy instead of captions (submission `[{"id", "correct"}]`).
    #[arg(long)]
    pub vqa: bool,
    /// Instead of the official layout under `--gt`: the WTS caption folder of an unpacked tree
    /// (e.g. `WTS/annotations/caption/val`). Needs `--gt-bdd` too.
    #[arg(long, requires = "gt_bdd", conflicts_with = "vqa")]
    pub gt_wts: Option<PathBuf>,
    /// The BDD_PC_5K caption folder of an unpacked tree (e.g. `BDD_PC_5k/annotations/caption/val`).
    #[arg(long, requires = "gt_wts")]
    pub gt_bdd: Option<PathBuf>,
    /// WordNet 3.0 folder (Debian `wordnet-base`), used by METEOR's synonym matching.
    #[arg(long, env = "WORDNET_DIR", default_value = wts_eval::DEFAULT_WORDNET_DIR)]
    pub wordnet: PathBuf,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let json = if args.vqa {
        let gt = args
            .gt
            .as_ref()
            .context("--vqa needs --gt (the VQA ground-truth JSON)")?;
        serde_json::to_string(&wts_eval::score_vqa(&args.pred, gt)?)?
    } else {
        let wordnet = wts_eval::WordNet::open(&args.wordnet)
            .with_context(|| format!("opening WordNet at {}", args.wordnet.display()))?;
        let report = match (&args.gt_wts, &args.gt_bdd) {
            (Some(internal), Some(external)) => {
                let dirs = wts_eval::GroundTruthDirs {
                    internal: internal.clone(),
                    external: external.clone(),
                };
                wts_eval::score_captions_with_dirs(&args.pred, &dirs, &wordnet)?
            }
            _ => {
                let gt = args
                    .gt
                    .as_ref()
                    .context("give --gt, or --gt-wts and --gt-bdd")?;
                wts_eval::score_captions(&args.pred, gt, &wordnet)?
            }
        };
        serde_json::to_string(&report)?
    };
    println!("{json}");
    Ok(())
}
