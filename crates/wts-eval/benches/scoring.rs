//! Throughput benchmark (not a timed test): scores N segments (a pedestrian and a
//! vehicle caption pair each) and prints segments/s, single-threaded and with rayon.
//!
//! `cargo bench -p wts-eval --bench scoring -- [N]` (default N = 2000). Segments are
//! built from `tests/fixtures/reference_pairs.json` exactly like
//! `make_reference.py --bench N` builds them, so the two numbers are comparable:
//! segment i = (pair i mod P as pedestrian, pair (i+1) mod P as vehicle), P = the
//! pairs with non-blank captions.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use wts_eval::{DEFAULT_WORDNET_DIR, WordNet, score_pair};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference_pairs.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&fixture)?)?;
    let pairs: Vec<(String, String)> = json["pairs"]
        .as_array()
        .ok_or("no pairs in fixture")?
        .iter()
        .filter_map(|p| {
            Some((
                p["hypothesis"].as_str()?.to_owned(),
                p["reference"].as_str()?.to_owned(),
            ))
        })
        .filter(|(h, r)| !h.trim().is_empty() && !r.trim().is_empty())
        .collect();
    let p = pairs.len();
    // (pedestrian pair, vehicle pair)
    type Segment<'a> = (&'a (String, String), &'a (String, String));
    let segments: Vec<Segment<'_>> = (0..n)
        .map(|i| (&pairs[i % p], &pairs[(i + 1) % p]))
        .collect();

    let t = Instant::now();
    let wordnet = WordNet::open(Path::new(DEFAULT_WORDNET_DIR))?;
    println!("WordNet::open: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);

    let score = |(ped, veh): &Segment<'_>| {
        let a = score_pair(&ped.0, &ped.1, &wordnet);
        let b = score_pair(&veh.0, &veh.1, &wordnet);
        a.bleu4 + a.meteor + a.rouge_l + a.cider + b.bleu4 + b.meteor + b.rouge_l + b.cider
    };

    let t = Instant::now();
    let checksum: f64 = segments.iter().map(score).sum();
    let dt = t.elapsed().as_secs_f64();
    println!(
        "1 thread: {n} segments in {dt:.3} s = {:.1} segments/s (checksum {checksum:.6})",
        n as f64 / dt
    );

    let threads = rayon::current_num_threads();
    let t = Instant::now();
    let checksum: f64 = segments.par_iter().map(score).sum();
    let dt = t.elapsed().as_secs_f64();
    println!(
        "rayon ({threads} threads): {n} segments in {dt:.3} s = {:.1} segments/s (checksum {checksum:.6})",
        n as f64 / dt
    );
    Ok(())
}
