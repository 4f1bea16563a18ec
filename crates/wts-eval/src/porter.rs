//! Port of nltk's `PorterStemmer()` in its default `NLTK_EXTENSIONS` mode
//! (nltk 3.10.4, `nltk/stem/porter.py`). METEOR (nltk `meteor_score`) and ROUGE-L
//! (`rouge_score.tokenizers.DefaultTokenizer(use_stemmer=True)`) both use it.
//!
//! Words are handled as sequences of Unicode scalar values, like Python `str`
//! indexing, so non-ASCII input stems exactly as in Python.

/// nltk's irregular forms pool (`NLTK_EXTENSIONS` only): form -> stem.
const POOL: &[(&str, &str)] = &[
    ("sky", "sky"),
    ("skies", "sky"),
    ("dying", "die"),
    ("lying", "lie"),
    ("tying", "tie"),
    ("news", "news"),
    ("innings", "inning"),
    ("inning", "inning"),
    ("outings", "outing"),
    ("outing", "outing"),
    ("cannings", "canning"),
    ("canning", "canning"),
    ("howe", "howe"),
    ("proceed", "proceed"),
    ("exceed", "exceed"),
    ("succeed", "succeed"),
];

type Word = Vec<char>;

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// `_is_consonant`: a `y` run alternates, anchored at the first non-`y` before it.
fn is_consonant(word: &[char], mut i: usize) -> bool {
    if is_vowel(word[i]) {
        return false;
    }
    if word[i] == 'y' {
        let mut negate = false;
        while i > 0 && word[i] == 'y' {
            negate = !negate;
            i -= 1;
        }
        // nltk: `(word[i] not in self.vowels) != negate`
        return is_vowel(word[i]) == negate;
    }
    true
}

/// `_consonant_flags`.
fn consonant_flags(word: &[char]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(word.len());
    for (i, &ch) in word.iter().enumerate() {
        let flag = if is_vowel(ch) {
            false
        } else if ch == 'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(flag);
    }
    flags
}

/// `_measure`: number of "vc" occurrences in the consonant/vowel pattern.
fn measure(stem: &[char]) -> usize {
    let flags = consonant_flags(stem);
    flags.windows(2).filter(|w| !w[0] && w[1]).count()
}

fn has_positive_measure(stem: &[char]) -> bool {
    measure(stem) > 0
}

fn contains_vowel(stem: &[char]) -> bool {
    !consonant_flags(stem).iter().all(|&c| c)
}

fn ends_double_consonant(word: &[char]) -> bool {
    let n = word.len();
    n >= 2 && word[n - 1] == word[n - 2] && is_consonant(word, n - 1)
}

/// `_ends_cvc`, including the NLTK extension for two-letter words.
fn ends_cvc(word: &[char]) -> bool {
    let n = word.len();
    (n >= 3
        && is_consonant(word, n - 3)
        && !is_consonant(word, n - 2)
        && is_consonant(word, n - 1)
        && !matches!(word[n - 1], 'w' | 'x' | 'y'))
        || (n == 2 && !is_consonant(word, 0) && is_consonant(word, 1))
}

fn ends_with(word: &[char], suffix: &str) -> bool {
    let n = suffix.chars().count();
    word.len() >= n && word[word.len() - n..].iter().copied().eq(suffix.chars())
}

/// `_replace_suffix` (the caller guarantees `word` ends with `suffix`).
fn replace_suffix(word: &[char], suffix: &str, replacement: &str) -> Word {
    let n = suffix.chars().count();
    let mut out: Word = word[..word.len() - n].to_vec();
    out.extend(replacement.chars());
    out
}

/// A rule condition evaluated on the stem left after removing the suffix.
type Condition<'a> = Option<&'a dyn Fn(&[char]) -> bool>;

/// One step rule: `(suffix, replacement, condition)`; suffix `"*d"` means
/// "ends in a double consonant" (nltk's convention).
struct RuleSpec<'a> {
    suffix: &'a str,
    replacement: String,
    condition: Condition<'a>,
}

fn rule<'a>(suffix: &'a str, replacement: &str, condition: Condition<'a>) -> RuleSpec<'a> {
    RuleSpec {
        suffix,
        replacement: replacement.to_owned(),
        condition,
    }
}

/// `_apply_rule_list`: the first rule whose suffix matches decides, whether or not
/// its condition holds.
fn apply_rule_list(word: &[char], rules: &[RuleSpec<'_>]) -> Word {
    for r in rules {
        if r.suffix == "*d" && ends_double_consonant(word) {
            let stem = &word[..word.len() - 2];
            if r.condition.is_none_or(|c| c(stem)) {
                let mut out = stem.to_vec();
                out.extend(r.replacement.chars());
                return out;
            }
            return word.to_vec();
        }
        if ends_with(word, r.suffix) {
            let stem = replace_suffix(word, r.suffix, "");
            if r.condition.is_none_or(|c| c(&stem)) {
                let mut out = stem;
                out.extend(r.replacement.chars());
                return out;
            }
            return word.to_vec();
        }
    }
    word.to_vec()
}

fn step1a(word: &[char]) -> Word {
    if ends_with(word, "ies") && word.len() == 4 {
        return replace_suffix(word, "ies", "ie");
    }
    apply_rule_list(
        word,
        &[
            rule("sses", "ss", None),
            rule("ies", "i", None),
            rule("ss", "ss", None),
            rule("s", "", None),
        ],
    )
}

fn step1b(word: &[char]) -> Word {
    if ends_with(word, "ied") {
        return if word.len() == 4 {
            replace_suffix(word, "ied", "ie")
        } else {
            replace_suffix(word, "ied", "i")
        };
    }
    if ends_with(word, "eed") {
        let stem = replace_suffix(word, "eed", "");
        return if measure(&stem) > 0 {
            let mut out = stem;
            out.extend("ee".chars());
            out
        } else {
            word.to_vec()
        };
    }
    let mut intermediate: Option<Word> = None;
    for suffix in ["ed", "ing"] {
        if ends_with(word, suffix) {
            let stem = replace_suffix(word, suffix, "");
            if contains_vowel(&stem) {
                intermediate = Some(stem);
                break;
            }
        }
    }
    let Some(stem) = intermediate else {
        return word.to_vec();
    };
    // `contains_vowel` held, so the stem is non-empty.
    let last = stem[stem.len() - 1];
    let last_str = last.to_string();
    let double_cond = move |_: &[char]| !matches!(last, 'l' | 's' | 'z');
    let e_cond = |s: &[char]| measure(s) == 1 && ends_cvc(s);
    apply_rule_list(
        &stem,
        &[
            rule("at", "ate", None),
            rule("bl", "ble", None),
            rule("iz", "ize", None),
            rule("*d", &last_str, Some(&double_cond)),
            rule("", "e", Some(&e_cond)),
        ],
    )
}

fn step1c(word: &[char]) -> Word {
    let cond = |stem: &[char]| stem.len() > 1 && is_consonant(stem, stem.len() - 1);
    apply_rule_list(word, &[rule("y", "i", Some(&cond))])
}

fn step2(word: &[char]) -> Word {
    if ends_with(word, "alli") && has_positive_measure(&replace_suffix(word, "alli", "")) {
        return step2(&replace_suffix(word, "alli", "al"));
    }
    let pos: &dyn Fn(&[char]) -> bool = &has_positive_measure;
    // nltk's `logi` rule checks the measure of `word[:-3]` (the stem plus its `l`).
    let logi_word = if word.len() >= 3 {
        word[..word.len() - 3].to_vec()
    } else {
        Vec::new()
    };
    let logi_cond = move |_: &[char]| has_positive_measure(&logi_word);
    let rules = [
        rule("ational", "ate", Some(pos)),
        rule("tional", "tion", Some(pos)),
        rule("enci", "ence", Some(pos)),
        rule("anci", "ance", Some(pos)),
        rule("izer", "ize", Some(pos)),
        rule("bli", "ble", Some(pos)),
        rule("alli", "al", Some(pos)),
        rule("entli", "ent", Some(pos)),
        rule("eli", "e", Some(pos)),
        rule("ousli", "ous", Some(pos)),
        rule("ization", "ize", Some(pos)),
        rule("ation", "ate", Some(pos)),
        rule("ator", "ate", Some(pos)),
        rule("alism", "al", Some(pos)),
        rule("iveness", "ive", Some(pos)),
        rule("fulness", "ful", Some(pos)),
        rule("ousness", "ous", Some(pos)),
        rule("aliti", "al", Some(pos)),
        rule("iviti", "ive", Some(pos)),
        rule("biliti", "ble", Some(pos)),
        rule("fulli", "ful", Some(pos)),
        rule("logi", "log", Some(&logi_cond)),
    ];
    apply_rule_list(word, &rules)
}

fn step3(word: &[char]) -> Word {
    let pos: &dyn Fn(&[char]) -> bool = &has_positive_measure;
    apply_rule_list(
        word,
        &[
            rule("icate", "ic", Some(pos)),
            rule("ative", "", Some(pos)),
            rule("alize", "al", Some(pos)),
            rule("iciti", "ic", Some(pos)),
            rule("ical", "ic", Some(pos)),
            rule("ful", "", Some(pos)),
            rule("ness", "", Some(pos)),
        ],
    )
}

fn step4(word: &[char]) -> Word {
    let gt1 = |s: &[char]| measure(s) > 1;
    let gt1: &dyn Fn(&[char]) -> bool = &gt1;
    let ion = |s: &[char]| measure(s) > 1 && matches!(s.last(), Some('s' | 't'));
    let mut rules: Vec<RuleSpec<'_>> = [
        "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent",
    ]
    .into_iter()
    .map(|s| rule(s, "", Some(gt1)))
    .collect();
    rules.push(rule("ion", "", Some(&ion)));
    rules.extend(
        ["ou", "ism", "ate", "iti", "ous", "ive", "ize"]
            .into_iter()
            .map(|s| rule(s, "", Some(gt1))),
    );
    apply_rule_list(word, &rules)
}

fn step5a(word: &[char]) -> Word {
    if ends_with(word, "e") {
        let stem = replace_suffix(word, "e", "");
        let m = measure(&stem);
        if m > 1 || (m == 1 && !ends_cvc(&stem)) {
            return stem;
        }
    }
    word.to_vec()
}

fn step5b(word: &[char]) -> Word {
    let whole = word.to_vec();
    let cond = move |_: &[char]| measure(&whole[..whole.len() - 1]) > 1;
    apply_rule_list(word, &[rule("ll", "l", Some(&cond))])
}

/// `PorterStemmer().stem(word)` with `to_lowercase=True`.
pub fn porter_stem(word: &str) -> String {
    let lowered = word.to_lowercase();
    if let Some((_, stem)) = POOL.iter().find(|(form, _)| *form == lowered) {
        return (*stem).to_owned();
    }
    // nltk compares the length of the *original* word here.
    if word.chars().count() <= 2 {
        return lowered;
    }
    let mut w: Word = lowered.chars().collect();
    w = step1a(&w);
    w = step1b(&w);
    w = step1c(&w);
    w = step2(&w);
    w = step3(&w);
    w = step4(&w);
    w = step5a(&w);
    w = step5b(&w);
    w.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::porter_stem;

    #[test]
    fn classic_examples() {
        for (w, s) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("running", "run"),
            ("hopping", "hop"),
            ("generalization", "gener"),
            ("vehicles", "vehicl"),
            ("dying", "die"),
            ("is", "is"),
        ] {
            assert_eq!(porter_stem(w), s, "{w}");
        }
    }
}
