//! The Track 2 CIDEr variant: the official scorer's custom `cider/cider_scorer.py`
//! (n=4, sigma=6) called with exactly one hypothesis and one reference per score
//! (`utils.compute_cider_single`). With a single reference "document" the scorer sets
//! `ref_len = 1` and every document frequency is 1 (or clamped to 1), so each n-gram
//! weight is its plain term frequency: there is no real IDF. Per order n the score is
//! `sum_g min(h_g, r_g) * r_g / (|h| |r|)` (division skipped when a norm is 0) times
//! `exp(-(len_h - len_r)^2 / (2 sigma^2))`, where the "length" is the scorer's count of
//! *bigrams* (its `n == 1` index). The four values are averaged and multiplied by 10.
//! Tokens come from `tokenize_sentence(x).split()` (whitespace split; empty -> none).

use std::collections::HashMap;

use crate::tokenize::tokenize;

const N: usize = 4;
const SIGMA: f64 = 6.0;

/// Term frequency of every n-gram of one order.
type Counts<'a> = HashMap<&'a [String], f64>;

/// Term-frequency vectors per order and the bigram count (`counts2vec`).
fn vectors(tokens: &[String]) -> (Vec<Counts<'_>>, [f64; N], usize) {
    let mut vec: Vec<Counts<'_>> = vec![HashMap::new(); N];
    for (n, map) in vec.iter_mut().enumerate() {
        let k = n + 1;
        if tokens.len() >= k {
            for gram in tokens.windows(k) {
                *map.entry(gram).or_insert(0.0) += 1.0;
            }
        }
    }
    let mut norm = [0.0; N];
    for (n, map) in vec.iter().enumerate() {
        norm[n] = map.values().map(|v| v * v).sum::<f64>().sqrt();
    }
    let bigrams = tokens.len().saturating_sub(1);
    (vec, norm, bigrams)
}

/// CIDEr (Track 2 variant) of already tokenized sentences, 0..=10.
pub fn cider_tokens(hypothesis: &[String], reference: &[String]) -> f64 {
    let (vh, nh, lh) = vectors(hypothesis);
    let (vr, nr, lr) = vectors(reference);
    let delta = lh as f64 - lr as f64;
    let penalty = std::f64::consts::E.powf(-(delta * delta) / (2.0 * SIGMA * SIGMA));
    let mut total = 0.0;
    for n in 0..N {
        let mut val = 0.0;
        for (gram, &h) in &vh[n] {
            let r = vr[n].get(gram).copied().unwrap_or(0.0);
            val += h.min(r) * r;
        }
        if nh[n] != 0.0 && nr[n] != 0.0 {
            val /= nh[n] * nr[n];
        }
        total += val * penalty;
    }
    total / N as f64 * 10.0
}

/// CIDEr (Track 2 variant) of a raw hypothesis against a raw reference caption.
pub fn cider(hypothesis: &str, reference: &str) -> f64 {
    cider_tokens(&tokenize(hypothesis), &tokenize(reference))
}
