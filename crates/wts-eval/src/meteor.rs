//! METEOR as the official scorer computes it (`utils.compute_meteor_single`):
//! nltk 3.10.4 `meteor_score([ref_tokens], hyp_tokens)` with its defaults
//! (`preprocess=str.lower`, `PorterStemmer()`, WordNet, alpha 0.9, beta 3, gamma 0.5)
//! over tokens from `tokenize_sentence(x).split(" ")`.
//!
//! Alignment follows `nltk/translate/meteor_score.py` stage by stage: exact matches,
//! then Porter-stem matches, then WordNet synonym matches; each stage walks the
//! hypothesis from its last word backwards and takes the *last* still-unmatched
//! reference position. nltk quirk kept on purpose: the synonym stage sees the words
//! left over from the stem stage *already stemmed* (its inputs are the stemmed lists).

use std::collections::HashMap;

use crate::bleu::scorer_tokens;
use crate::porter::porter_stem;
use crate::tokenize::tokenize;
use crate::wordnet::WordNet;

const ALPHA: f64 = 0.9;
const BETA: f64 = 3.0;
const GAMMA: f64 = 0.5;

/// `(original index, word)` pairs still unmatched.
type Enum = Vec<(usize, String)>;

/// nltk `_match_enums`: exact string matches between the two remaining lists.
fn match_enums(hyp: Enum, reference: Enum, matches: &mut Vec<(usize, usize)>) -> (Enum, Enum) {
    let mut positions: HashMap<&str, Vec<usize>> = HashMap::new();
    for (j, (_, w)) in reference.iter().enumerate() {
        positions.entry(w.as_str()).or_default().push(j);
    }
    let mut hyp_used = vec![false; hyp.len()];
    let mut ref_used = vec![false; reference.len()];
    for i in (0..hyp.len()).rev() {
        if let Some(j) = positions.get_mut(hyp[i].1.as_str()).and_then(Vec::pop) {
            hyp_used[i] = true;
            ref_used[j] = true;
            matches.push((hyp[i].0, reference[j].0));
        }
    }
    (
        keep_unused(hyp, &hyp_used),
        keep_unused(reference, &ref_used),
    )
}

fn keep_unused(list: Enum, used: &[bool]) -> Enum {
    list.into_iter()
        .zip(used)
        .filter(|(_, u)| !**u)
        .map(|(p, _)| p)
        .collect()
}

/// nltk `_enum_wordnetsyn_match`.
fn wordnet_match(
    hyp: &Enum,
    reference: &Enum,
    wordnet: &WordNet,
    matches: &mut Vec<(usize, usize)>,
) {
    let mut positions: HashMap<&str, Vec<usize>> = HashMap::new();
    for (j, (_, w)) in reference.iter().enumerate() {
        positions.entry(w.as_str()).or_default().push(j);
    }
    for i in (0..hyp.len()).rev() {
        let syns = wordnet.meteor_synonyms(&hyp[i].1);
        let mut best: Option<(usize, &str)> = None;
        for syn in &syns {
            if let Some((key, pos)) = positions.get_key_value(syn.as_str())
                && let Some(&last) = pos.last()
                && best.is_none_or(|(b, _)| last > b)
            {
                best = Some((last, key));
            }
        }
        if let Some((j, key)) = best {
            if let Some(p) = positions.get_mut(key) {
                p.pop();
            }
            matches.push((hyp[i].0, reference[j].0));
        }
    }
}

/// nltk `_count_chunks` over matches sorted by hypothesis index.
fn count_chunks(matches: &[(usize, usize)]) -> usize {
    let mut chunks = 1;
    for w in matches.windows(2) {
        if !(w[1].0 == w[0].0 + 1 && w[1].1 == w[0].1 + 1) {
            chunks += 1;
        }
    }
    chunks
}

/// METEOR of already tokenized sentences (nltk `single_meteor_score`).
pub fn meteor_tokens(hypothesis: &[&str], reference: &[&str], wordnet: &WordNet) -> f64 {
    let hyp: Enum = hypothesis
        .iter()
        .map(|w| w.to_lowercase())
        .enumerate()
        .collect();
    let reference: Enum = reference
        .iter()
        .map(|w| w.to_lowercase())
        .enumerate()
        .collect();
    let (translation_length, reference_length) = (hyp.len(), reference.len());
    let mut matches = Vec::new();
    let (hyp, reference) = match_enums(hyp, reference, &mut matches);
    let stem = |l: Enum| -> Enum { l.into_iter().map(|(i, w)| (i, porter_stem(&w))).collect() };
    let (hyp, reference) = match_enums(stem(hyp), stem(reference), &mut matches);
    wordnet_match(&hyp, &reference, wordnet, &mut matches);
    matches.sort_by_key(|m| m.0);

    // Python raises ZeroDivisionError (-> score 0.0) on any zero denominator below.
    let m = matches.len() as f64;
    if translation_length == 0 || reference_length == 0 {
        return 0.0;
    }
    let precision = m / translation_length as f64;
    let recall = m / reference_length as f64;
    let denom = ALPHA * precision + (1.0 - ALPHA) * recall;
    if denom == 0.0 || matches.is_empty() {
        return 0.0;
    }
    let fmean = precision * recall / denom;
    let frag_frac = count_chunks(&matches) as f64 / m;
    let penalty = GAMMA * frag_frac.powf(BETA);
    (1.0 - penalty) * fmean
}

/// METEOR of a raw hypothesis against a raw reference caption, as the official scorer
/// computes it (Treebank tokenization included).
pub fn meteor(hypothesis: &str, reference: &str, wordnet: &WordNet) -> f64 {
    let (h, r) = (tokenize(hypothesis), tokenize(reference));
    meteor_tokens(&scorer_tokens(&h), &scorer_tokens(&r), wordnet)
}
