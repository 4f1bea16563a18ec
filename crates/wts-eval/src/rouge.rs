//! ROUGE-L F-measure as the official scorer computes it (`utils.compute_rouge_l_single`):
//! `rouge_score.rouge_scorer.RougeScorer(['rougeL'], use_stemmer=True).score(hyp, ref)`
//! (rouge-score 0.1.2) on the *raw* captions. Note the scorer passes the hypothesis as
//! `target` and the reference as `prediction`; precision and recall are swapped
//! accordingly here (the F-measure is symmetric).

use crate::porter::porter_stem;
use crate::tokenize::py_split_whitespace;

/// rouge-score `tokenize.tokenize(text, PorterStemmer())`: lowercase, every run of
/// characters outside `[a-z0-9]` becomes a space, Porter-stem tokens longer than
/// three characters, keep non-empty `[a-z0-9]+` tokens.
pub fn rouge_tokenize(text: &str) -> Vec<String> {
    let lowered = text.to_lowercase();
    let cleaned: String = lowered
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                ' '
            }
        })
        .collect();
    py_split_whitespace(&cleaned)
        .map(|t| {
            if t.chars().count() > 3 {
                porter_stem(t)
            } else {
                t.to_owned()
            }
        })
        .filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .collect()
}

/// Length of the longest common subsequence (rouge-score `_lcs_table[-1][-1]`).
fn lcs_len(a: &[String], b: &[String]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ROUGE-L F-measure of already rouge-tokenized `target` and `prediction`
/// (rouge-score `_score_lcs(...).fmeasure`).
pub fn rouge_l_tokens(target: &[String], prediction: &[String]) -> f64 {
    if target.is_empty() || prediction.is_empty() {
        return 0.0;
    }
    let lcs = lcs_len(target, prediction) as f64;
    let precision = lcs / prediction.len() as f64;
    let recall = lcs / target.len() as f64;
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

/// ROUGE-L F-measure of a raw hypothesis against a raw reference, as the scorer calls it
/// (`score(target=hypothesis, prediction=reference)`).
pub fn rouge_l(hypothesis: &str, reference: &str) -> f64 {
    rouge_l_tokens(&rouge_tokenize(hypothesis), &rouge_tokenize(reference))
}
