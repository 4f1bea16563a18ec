//! Port of nltk's `TreebankWordTokenizer().tokenize` (nltk 3.10.4,
//! `nltk/tokenize/treebank.py` and `MacIntyreContractions` in
//! `nltk/tokenize/destructive.py`), used by the official Track 2 scorer
//! (`evaluation/eval-metrics-AIC-Track2/utils.py::tokenize_sentence`) before BLEU,
//! METEOR and CIDEr. Case is kept.
//!
//! Python's `re` semantics that differ from Rust's `regex` are emulated:
//! - `$` (no MULTILINE) matches at the very end *or before a final `\n`*; written here as
//!   the look-ahead `(?=\n?\z)` (hence `fancy-regex`).
//! - `str.split()` and the stdlib `re`'s `\s` (used by the contraction rules) also treat
//!   U+001C..U+001F as whitespace (`str.isspace`), Rust's `\s` does not; they are added
//!   where nltk uses those. The other rules go through the `regex` module, whose `\s`
//!   equals Rust's.

use std::borrow::Cow;
use std::sync::LazyLock;

use fancy_regex::Regex as FancyRegex;
use regex::Regex;

/// Python's `\s` for `str` patterns (= `str.isspace`): Unicode White_Space plus the
/// four information separators U+001C..U+001F.
const PY_SPACE: &str = r"\s\x{1c}-\x{1f}";

/// One substitution step: either a plain regex or one that needs look-around.
enum Rule {
    Plain(Regex, &'static str),
    Fancy(FancyRegex, &'static str),
}

impl Rule {
    fn plain(pattern: &str, replacement: &'static str) -> Rule {
        // The patterns are compile-time constants; a failure is a programming error.
        Rule::Plain(
            Regex::new(pattern).unwrap_or_else(|e| panic!("bad tokenizer regex {pattern}: {e}")),
            replacement,
        )
    }

    fn fancy(pattern: &str, replacement: &'static str) -> Rule {
        Rule::Fancy(
            FancyRegex::new(pattern)
                .unwrap_or_else(|e| panic!("bad tokenizer regex {pattern}: {e}")),
            replacement,
        )
    }

    fn apply(&self, text: String) -> String {
        match self {
            Rule::Plain(re, rep) => match re.replace_all(&text, *rep) {
                Cow::Borrowed(_) => text,
                Cow::Owned(s) => s,
            },
            // These look-aheads inspect at most two characters, so the backtracking limit
            // cannot be reached; if it ever were, the step is skipped rather than panicking.
            Rule::Fancy(re, rep) => match re.try_replacen(&text, 0, *rep) {
                Ok(Cow::Owned(s)) => s,
                Ok(Cow::Borrowed(_)) | Err(_) => text,
            },
        }
    }
}

/// All rules in nltk's order: STARTING_QUOTES, PUNCTUATION, PARENS_BRACKETS,
/// DOUBLE_DASHES, (pad with spaces), ENDING_QUOTES, CONTRACTIONS2, CONTRACTIONS3.
/// `None` marks the point where nltk pads the text with one space on each side.
static RULES: LazyLock<Vec<Option<Rule>>> = LazyLock::new(|| {
    // nltk compiles these rules with the third-party `regex` module (`nltk.redos`), whose
    // `\s` is Unicode White_Space, i.e. Rust's `\s`; only the contraction rules use the
    // stdlib `re` (whose `\s` adds U+001C..U+001F).
    let final_period = r#"([^\.])(\.)([\]\)}>"']*)\s*\z"#;
    let wanna = format!(r"(?i)\b(wan)(na)(?=[{PY_SPACE}])");
    vec![
        // STARTING_QUOTES
        Some(Rule::plain(r#"^""#, "``")),
        Some(Rule::plain(r"(``)", " $1 ")),
        Some(Rule::plain(r#"([ \(\[{<])("|'{2})"#, "$1 `` ")),
        // PUNCTUATION
        Some(Rule::plain(r"([:,])([^\d])", " $1 $2")),
        Some(Rule::fancy(r"([:,])(?=\n?\z)", " $1 ")),
        Some(Rule::plain(r"\.\.\.", " ... ")),
        Some(Rule::plain(r"[;@#$%&]", " $0 ")),
        // Final period. Python's `\s*$` is equivalent to `\s*\z` here because `\s*`
        // would consume the final newline that `$` may stop before.
        Some(Rule::plain(final_period, "$1 $2$3 ")),
        Some(Rule::plain(r"[?!]", " $0 ")),
        Some(Rule::plain(r"([^'])' ", "$1 ' ")),
        // PARENS_BRACKETS (convert_parentheses=False in the scorer)
        Some(Rule::plain(r"[\]\[\(\)\{\}<>]", " $0 ")),
        // DOUBLE_DASHES
        Some(Rule::plain(r"--", " -- ")),
        None,
        // ENDING_QUOTES
        Some(Rule::plain(r"''", " '' ")),
        Some(Rule::plain(r#"""#, " '' ")),
        Some(Rule::plain(r"([^' ])('[sS]|'[mM]|'[dD]|') ", "$1 $2 ")),
        Some(Rule::plain(
            r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ",
            "$1 $2 ",
        )),
        // CONTRACTIONS2 (compiled with the stdlib `re` in nltk, all case-insensitive)
        Some(Rule::plain(r"(?i)\b(can)(not)\b", " $1 $2 ")),
        Some(Rule::plain(r"(?i)\b(d)('ye)\b", " $1 $2 ")),
        Some(Rule::plain(r"(?i)\b(gim)(me)\b", " $1 $2 ")),
        Some(Rule::plain(r"(?i)\b(gon)(na)\b", " $1 $2 ")),
        Some(Rule::plain(r"(?i)\b(got)(ta)\b", " $1 $2 ")),
        Some(Rule::plain(r"(?i)\b(lem)(me)\b", " $1 $2 ")),
        Some(Rule::plain(r"(?i)\b(more)('n)\b", " $1 $2 ")),
        Some(Rule::fancy(&wanna, " $1 $2 ")),
        // CONTRACTIONS3
        Some(Rule::plain(r"(?i) ('t)(is)\b", " $1 $2 ")),
        Some(Rule::plain(r"(?i) ('t)(was)\b", " $1 $2 ")),
    ]
});

/// Python's `str.isspace` for one character (used by `str.split()`).
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Splits like Python's `str.split()` without arguments.
pub(crate) fn py_split_whitespace(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_py_space).filter(|t| !t.is_empty())
}

/// `TreebankWordTokenizer().tokenize(text)` (default arguments).
pub fn tokenize(text: &str) -> Vec<String> {
    let mut text = text.to_owned();
    for rule in RULES.iter() {
        match rule {
            Some(rule) => text = rule.apply(text),
            None => text = format!(" {text} "),
        }
    }
    py_split_whitespace(&text).map(str::to_owned).collect()
}

/// The scorer's `tokenize_sentence`: tokens joined by single spaces ("" when none).
pub fn tokenize_sentence(text: &str) -> String {
    tokenize(text).join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nltk_docstring_examples() {
        let s = "Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\nThanks.";
        assert_eq!(
            tokenize(s),
            [
                "Good", "muffins", "cost", "$", "3.88", "in", "New", "York.", "Please", "buy",
                "me", "two", "of", "them.", "Thanks", "."
            ]
        );
        assert_eq!(
            tokenize("They'll save and invest more."),
            ["They", "'ll", "save", "and", "invest", "more", "."]
        );
        assert_eq!(
            tokenize("hi, my name can't hello,"),
            ["hi", ",", "my", "name", "ca", "n't", "hello", ","]
        );
    }
}
