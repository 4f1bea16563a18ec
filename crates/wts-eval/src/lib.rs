//! Scoring for AI City Challenge 2024/2025 Track 2 (WTS / BDD_PC_5K), reproducing the
//! official scorer `woven-visionai/wts-dataset/evaluation/eval-metrics-AIC-Track2`
//! (`metrics_all.py`, `utils.py`, `cider/`) number for number, plus the 2025 VQA
//! accuracy of `eval-metrics-AIC-Track2_VQA/traffic_qa_evaluation_script.py`.
//!
//! Per caption pair ([`score_pair`]): Treebank tokenization ([`tokenize`]), BLEU-4
//! ([`bleu4`]), METEOR with WordNet synonyms ([`meteor`]), ROUGE-L ([`rouge_l`]) and the
//! Track 2 CIDEr variant ([`cider`]). Whole submissions: [`score_captions`] and
//! [`score_vqa`]. The reference implementations are nltk 3.10.4 and rouge-score 0.1.2;
//! `tests/fixtures/make_reference.py` produces the values the tests compare against.

mod aggregate;
mod bleu;
mod cider;
mod error;
mod meteor;
mod porter;
mod rouge;
mod tokenize;
mod vqa;
mod wordnet;

pub use aggregate::{
    CaptionReport, GroundTruthDirs, MetricScores, SubsetDiagnostics, SubsetReport, score_captions,
    score_captions_with_dirs,
};
pub use bleu::{bleu4, bleu4_tokens};
pub use cider::{cider, cider_tokens};
pub use error::EvalError;
pub use meteor::{meteor, meteor_tokens};
pub use porter::porter_stem;
pub use rouge::{rouge_l, rouge_l_tokens, rouge_tokenize};
pub use tokenize::{tokenize, tokenize_sentence};
pub use vqa::{VqaReport, score_vqa};
pub use wordnet::{DEFAULT_WORDNET_DIR, WordNet};

/// The four metrics of one hypothesis/reference caption pair, on the official scales
/// (BLEU, METEOR, ROUGE-L in 0..=1, CIDEr in 0..=10).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PairScores {
    pub bleu4: f64,
    pub meteor: f64,
    pub rouge_l: f64,
    pub cider: f64,
}

/// The official `utils.compute_metrics_single(pred, gt)`: all four metrics of one
/// caption pair, tokenizing each caption once.
pub fn score_pair(hypothesis: &str, reference: &str, wordnet: &WordNet) -> PairScores {
    let (h, r) = (tokenize(hypothesis), tokenize(reference));
    let (hs, rs) = (bleu::scorer_tokens(&h), bleu::scorer_tokens(&r));
    PairScores {
        bleu4: bleu4_tokens(&hs, &rs),
        meteor: meteor_tokens(&hs, &rs, wordnet),
        rouge_l: rouge_l(hypothesis, reference),
        cider: cider_tokens(&h, &r),
    }
}
