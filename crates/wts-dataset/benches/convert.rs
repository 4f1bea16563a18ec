//! Conversion throughput benchmark (not a timed test): frames/s of `convert` on the synthetic
//! tree, cold (every frame decoded, drawn, encoded) and warm (a re-run that reuses everything).
//!
//! `cargo bench -p wts-dataset --bench convert -- [FRAMES_PER_PHASE] [OUT_DIR]`
//!
//! It leaves the converted dataset (with its `manifest.json`) in OUT_DIR, so
//! `benches/reference_convert.py OUT_DIR` can redo the same frames the way a Python pipeline
//! would (one ffmpeg seek per frame, PIL drawing, PIL JPEG) for the figure beside ours.

use std::path::PathBuf;
use std::time::Instant;

use wts_dataset::convert::{ConvertConfig, FramePick, convert};
use wts_dataset::synth::write_synthetic_tree;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let per_phase: u32 = args.first().map(|s| s.parse()).transpose()?.unwrap_or(8);
    let out: PathBuf = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("wts-convert-bench"));
    let _ = std::fs::remove_dir_all(&out);
    let raw = out.join("raw");
    let synth = write_synthetic_tree(&raw)?;

    let mut cfg = ConvertConfig::new(out.join("data"), "BENCH");
    cfg.wts_root = Some(synth.wts_root.clone());
    cfg.bdd_root = Some(synth.bdd_root.clone());
    cfg.frames = FramePick::Evenly(per_phase);
    cfg.draw_boxes = true;
    cfg.crop = true;
    cfg.multi_image = true;

    let threads = rayon::current_num_threads();
    let start = Instant::now();
    let cold = convert(&cfg)?;
    let cold_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let warm = convert(&cfg)?;
    let warm_s = start.elapsed().as_secs_f64();
    println!(
        "{{\"bench\":\"convert\",\"threads\":{threads},\"frames_per_phase\":{per_phase},\"samples\":{},\
         \"images\":{},\"cold_s\":{cold_s:.3},\"cold_images_per_s\":{:.1},\"warm_s\":{warm_s:.3},\
         \"warm_reused\":{},\"out\":{:?}}}",
        cold.samples,
        cold.images_written,
        cold.images_written as f64 / cold_s,
        warm.images_reused,
        out.display().to_string()
    );
    Ok(())
}
