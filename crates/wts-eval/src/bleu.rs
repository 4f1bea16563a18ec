//! Sentence BLEU-4 as the official scorer calls it
//! (`utils.compute_bleu_single`): nltk 3.10.4
//! `sentence_bleu([ref], hyp, weights=(0.25,)*4, smoothing_function=SmoothingFunction().method3)`
//! over tokens from `tokenize_sentence(x).split(" ")` (so an empty caption is the
//! single token `""`).

use std::collections::HashMap;

use crate::tokenize::tokenize;

/// n-gram counts of `tokens` for one order `n` (empty when `len < n`, like nltk).
fn ngram_counts<'a>(tokens: &'a [&'a str], n: usize) -> HashMap<&'a [&'a str], usize> {
    let mut counts = HashMap::new();
    if tokens.len() >= n {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// nltk `modified_precision` as an unreduced fraction `(numerator, denominator)`.
fn modified_precision(hyp: &[&str], reference: &[&str], n: usize) -> (usize, usize) {
    let counts = ngram_counts(hyp, n);
    let ref_counts = ngram_counts(reference, n);
    let numerator = counts
        .iter()
        .map(|(g, &c)| c.min(ref_counts.get(g).copied().unwrap_or(0)))
        .sum();
    let denominator = counts.values().sum::<usize>().max(1);
    (numerator, denominator)
}

/// BLEU-4 of already tokenized sentences (one reference), nltk semantics.
pub fn bleu4_tokens(hyp: &[&str], reference: &[&str]) -> f64 {
    let p: Vec<(usize, usize)> = (1..=4)
        .map(|n| modified_precision(hyp, reference, n))
        .collect();
    // nltk returns 0 (before smoothing) when there is no unigram match.
    if p[0].0 == 0 {
        return 0.0;
    }
    let (hyp_len, ref_len) = (hyp.len(), reference.len());
    // nltk `brevity_penalty(closest_ref_len, hyp_len)`.
    let bp = if hyp_len > ref_len {
        1.0
    } else if hyp_len == 0 {
        0.0
    } else {
        (1.0 - ref_len as f64 / hyp_len as f64).exp()
    };
    // SmoothingFunction().method3 (NIST geometric sequence): the k-th zero-match order
    // gets 1 / (2^k * denominator).
    let mut incvnt = 1i32;
    let mut logs = Vec::with_capacity(4);
    for &(num, den) in &p {
        let value = if num == 0 {
            let v = 1.0 / (2f64.powi(incvnt) * den as f64);
            incvnt += 1;
            v
        } else {
            num as f64 / den as f64
        };
        logs.push(0.25 * value.ln());
    }
    bp * exact_sum(&logs).exp()
}

/// Sum with an error-free accumulator (stands in for Python's `math.fsum`).
fn exact_sum(values: &[f64]) -> f64 {
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    for &v in values {
        let t = sum + v;
        comp += if sum.abs() >= v.abs() {
            (sum - t) + v
        } else {
            (v - t) + sum
        };
        sum = t;
    }
    sum + comp
}

/// The tokens the scorer feeds BLEU and METEOR: `tokenize_sentence(s).split(" ")`.
pub(crate) fn scorer_tokens(tokens: &[String]) -> Vec<&str> {
    if tokens.is_empty() {
        vec![""]
    } else {
        tokens.iter().map(String::as_str).collect()
    }
}

/// BLEU-4 of a raw hypothesis caption against a raw reference caption, exactly as
/// the official scorer computes it (Treebank tokenization included).
pub fn bleu4(hypothesis: &str, reference: &str) -> f64 {
    let (h, r) = (tokenize(hypothesis), tokenize(reference));
    bleu4_tokens(&scorer_tokens(&h), &scorer_tokens(&r))
}
