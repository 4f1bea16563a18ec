//! The token choosers of `generate.rs` on hand-made logits: argmax ties, nucleus (top-p) set
//! sizes as HF's `TopPLogitsWarper` keeps them, temperature, and the seeded RNG.

use nvila_model::generate::{Pcg32, argmax, sample};

#[test]
fn argmax_takes_the_first_maximum_and_refuses_nan() {
    assert_eq!(argmax(&[1.0, 3.0, 3.0, -2.0]), Some(1));
    assert_eq!(argmax(&[f32::NEG_INFINITY, -5.0]), Some(1));
    assert_eq!(argmax(&[]), None);
    assert_eq!(argmax(&[1.0, f32::NAN]), None);
}

#[test]
fn pcg32_matches_the_reference_stream_and_is_seeded() {
    // pcg32_srandom_r(42, 54) from the PCG reference (pcg32-demo): first outputs.
    let mut rng = Pcg32::new(42);
    let first: Vec<u32> = (0..6).map(|_| rng.next_u32()).collect();
    assert_eq!(
        first,
        [
            0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e
        ]
    );
    let mut a = Pcg32::new(7);
    let mut b = Pcg32::new(7);
    let mut c = Pcg32::new(8);
    let xs: Vec<f64> = (0..100).map(|_| a.next_f64()).collect();
    let ys: Vec<f64> = (0..100).map(|_| b.next_f64()).collect();
    let zs: Vec<f64> = (0..100).map(|_| c.next_f64()).collect();
    assert_eq!(xs, ys);
    assert_ne!(xs, zs);
    assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
    let mean = xs.iter().sum::<f64>() / 100.0;
    assert!((0.35..0.65).contains(&mean), "mean {mean}");
}

/// Token ids drawn in `n` samples.
fn draws(logits: &[f32], temperature: f32, top_p: f32, n: usize) -> Vec<usize> {
    let mut rng = Pcg32::new(1);
    (0..n)
        .map(|_| sample(logits, temperature, top_p, &mut rng).unwrap())
        .collect()
}

#[test]
fn top_p_keeps_the_smallest_set_reaching_the_threshold() {
    // Probabilities 0.5, 0.3, 0.15, 0.05 (ids 2, 0, 3, 1).
    let logits: Vec<f32> = [0.3f32, 0.05, 0.5, 0.15].iter().map(|p| p.ln()).collect();
    let support = |top_p: f32| {
        let mut ids = draws(&logits, 1.0, top_p, 2000);
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    assert_eq!(support(0.4), [2]);
    assert_eq!(support(0.5), [2], "0.5 is reached by the first token alone");
    assert_eq!(support(0.6), [0, 2]);
    assert_eq!(support(0.9), [0, 2, 3]);
    assert_eq!(support(1.0), [0, 1, 2, 3]);
    assert_eq!(support(0.0), [2], "at least one token is kept");
}

#[test]
fn sampled_frequencies_follow_the_renormalised_distribution() {
    let logits: Vec<f32> = [0.3f32, 0.05, 0.5, 0.15].iter().map(|p| p.ln()).collect();
    let n = 20_000;
    let ids = draws(&logits, 1.0, 0.6, n);
    let share = ids.iter().filter(|&&i| i == 2).count() as f64 / n as f64;
    // Kept {2: 0.5, 0: 0.3}: token 2 has 0.625 of the mass.
    assert!((share - 0.625).abs() < 0.02, "share {share}");
    // Temperature 2 flattens: p ∝ sqrt(p).
    let ids = draws(&logits, 2.0, 1.0, n);
    let want = 0.5f64.sqrt()
        / [0.3f64, 0.05, 0.5, 0.15]
            .iter()
            .map(|p| p.sqrt())
            .sum::<f64>();
    let share = ids.iter().filter(|&&i| i == 2).count() as f64 / n as f64;
    assert!((share - want).abs() < 0.02, "share {share}, want {want}");
}

#[test]
fn tiny_temperature_is_argmax_and_masked_tokens_are_never_drawn() {
    let logits = [1.0f32, 1.5, f32::NEG_INFINITY, 1.49];
    assert!(draws(&logits, 1e-6, 1.0, 500).iter().all(|&i| i == 1));
    assert!(draws(&logits, 1.0, 1.0, 2000).iter().all(|&i| i != 2));
    assert_eq!(
        sample(&[f32::NEG_INFINITY; 3], 1.0, 1.0, &mut Pcg32::new(0)),
        None
    );
    assert_eq!(sample(&[0.0, f32::NAN], 1.0, 1.0, &mut Pcg32::new(0)), None);
}
