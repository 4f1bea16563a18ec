//! Every per-pair metric, the tokenizer, the Porter stemmer and the WordNet synonym
//! sets against the values `fixtures/make_reference.py` computed with nltk and
//! rouge-score (and cross-checked against the official scorer's `utils.py`).

mod common;

use common::{assert_close, fixtures, read_json, wordnet};
use serde_json::Value;
use wts_eval::{bleu4, cider, meteor, porter_stem, rouge_l, score_pair, tokenize};

fn reference() -> Value {
    read_json(&fixtures().join("reference_pairs.json"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pairs_match_reference_metrics() {
    let r = reference();
    let pairs = r["pairs"].as_array().expect("pairs");
    assert!(
        pairs.len() >= 40,
        "expected about 40 pairs, got {}",
        pairs.len()
    );
    let wn = wordnet();
    let mut max_diff = 0.0f64;
    for p in pairs {
        let (h, rf) = (
            p["hypothesis"].as_str().expect("hyp"),
            p["reference"].as_str().expect("ref"),
        );
        let what = |m: &str| format!("{m} of {h:?} vs {rf:?}");
        assert_eq!(
            tokenize(h),
            strings(&p["hypothesis_tokens"]),
            "{}",
            what("tokens")
        );
        assert_eq!(
            tokenize(rf),
            strings(&p["reference_tokens"]),
            "{}",
            what("tokens")
        );
        let checks = [
            ("bleu4", bleu4(h, rf)),
            ("meteor", meteor(h, rf, wn)),
            ("rouge_l", rouge_l(h, rf)),
            ("cider", cider(h, rf)),
        ];
        for (name, got) in checks {
            let want = p[name].as_f64().expect("number");
            max_diff = max_diff.max((got - want).abs());
            assert_close(got, want, &what(name));
        }
        let all = score_pair(h, rf, wn);
        assert_eq!(
            (all.bleu4, all.meteor, all.rouge_l, all.cider),
            (checks[0].1, checks[1].1, checks[2].1, checks[3].1)
        );
    }
    // The ports are exact ports; differences should be rounding noise only.
    assert!(max_diff < 1e-9, "max difference {max_diff}");
}

#[test]
fn identical_long_caption_scores_full_marks() {
    let r = reference();
    let p = r["pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .find(|p| {
            p["hypothesis"] == p["reference"]
                && p["hypothesis"].as_str().is_some_and(|s| s.len() > 300)
        })
        .expect("identical long pair");
    let s = score_pair(
        p["hypothesis"].as_str().expect("s"),
        p["reference"].as_str().expect("s"),
        wordnet(),
    );
    assert_close(s.bleu4, 1.0, "bleu");
    assert_close(s.rouge_l, 1.0, "rouge");
    assert_close(s.cider, 10.0, "cider");
    assert_close(s.meteor, p["meteor"].as_f64().expect("m"), "meteor");
}

#[test]
fn tokenizer_matches_nltk() {
    for case in reference()["tokenizer"].as_array().expect("tokenizer") {
        let text = case["text"].as_str().expect("text");
        assert_eq!(
            tokenize(text),
            strings(&case["tokens"]),
            "tokenize({text:?})"
        );
    }
}

#[test]
fn porter_matches_nltk() {
    let r = reference();
    let stems = r["porter"].as_object().expect("porter");
    assert!(stems.len() > 150);
    for (word, stem) in stems {
        assert_eq!(
            porter_stem(word),
            stem.as_str().expect("stem"),
            "stem({word:?})"
        );
    }
}

#[test]
fn wordnet_synonyms_match_nltk() {
    let wn = wordnet();
    let r = reference();
    for (word, syns) in r["meteor_synonyms"].as_object().expect("synonyms") {
        assert_eq!(
            wn.meteor_synonyms(word),
            strings(syns),
            "synonyms of {word:?}"
        );
    }
    for case in r["morphy"].as_array().expect("morphy") {
        let (form, pos) = (
            case["form"].as_str().expect("form"),
            case["pos"].as_str().expect("pos"),
        );
        let pos = pos.chars().next().expect("pos char");
        assert_eq!(
            wn.morphy_forms(form, pos),
            strings(&case["forms"]),
            "_morphy({form:?}, {pos:?})"
        );
    }
}
