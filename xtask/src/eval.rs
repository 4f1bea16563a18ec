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
    #[arg(long)]
    pub gt: PathBuf,
    /// Score VQA accuracy instead of captions (submission `[{"id", "correct"}]`).
    #[arg(long)]
    pub vqa: bool,
    /// WordNet 3.0 folder (Debian `wordnet-base`), used by METEOR's synonym matching.
    #[arg(long, env = "WORDNET_DIR", default_value = wts_eval::DEFAULT_WORDNET_DIR)]
    pub wordnet: PathBuf,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let json = if args.vqa {
        serde_json::to_string(&wts_eval::score_vqa(&args.pred, &args.gt)?)?
    } else {
        let wordnet = wts_eval::WordNet::open(&args.wordnet)
            .with_context(|| format!("opening WordNet at {}", args.wordnet.display()))?;
        serde_json::to_string(&wts_eval::score_captions(&args.pred, &args.gt, &wordnet)?)?
    };
    println!("{json}");
    Ok(())
}
