//! `DATA_MIXTURE` strings and VILA's `llava/data/registry/mixtures.yaml`.
//!
//! Semantics mirror `llava/data/builder.py`:
//!
//! * `parse_mixture`: the string is split on `+`; every element that names a mixture in
//!   `mixtures.yaml` is replaced by that mixture's list, repeatedly, until no element is a
//!   mixture name; then the **raw element strings** are `sorted()`. Sorting therefore
//!   happens *before* any `*N` / `@subset` suffix is interpreted, compares the suffixes as
//!   text (`"a" < "a*2" < "a@s" < "b"`), and keeps duplicates (`a+a` trains on `a` twice,
//!   each a separate `ConcatDataset` member). Rust's `str` ordering is byte order, which
//!   for UTF-8 equals Python's code-point order, so `Vec::sort` reproduces `sorted()`.
//! * `build_dataset` then looks at each sorted element: first, if it contains `@`, it is
//!   split into `name@subset` (exactly one `@`); then, if *the name part* contains `*`, it
//!   is split into `name*N` (exactly one `*`, `N` an integer). So `a*3@s` is `a`, 3
//!   repeats, subset `s`, whereas `a@s*3` is `a` with subset `s*3` and no repeat; we keep
//!   that quirk so a mixture means here what it means in VILA.
//! * A mixture element equal to both a mixture name and a dataset name is expanded (the
//!   mixture wins), as in VILA.
//!
//! Where VILA would accept a string but then fail or misbehave later, we reject it up
//! front with a message: empty elements (`a++b`), whitespace (VILA does not trim, so
//! `"a + b"` looks up `"a "`), an empty name or subset, a repeat count below 1 (VILA
//! silently uses the dataset once), and mixtures that include themselves (VILA's
//! expansion loop never ends).

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_yaml::Value;

use crate::entry::kind_of;
use crate::error::RegistryError;
use crate::registry::is_blank_yaml;

/// Named mixtures: `name: [dataset-or-mixture, ...]`, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mixtures {
    path: Option<PathBuf>,
    entries: Vec<(String, Vec<String>)>,
}

impl Mixtures {
    /// Reads a `mixtures.yaml`. A missing file is an error; an empty one has no mixtures.
    pub fn load(path: &Path) -> Result<Mixtures, RegistryError> {
        let text = fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `mixtures.yaml` text; `origin` names the file in messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Mixtures, RegistryError> {
        let mut out = Mixtures {
            path: Some(origin.to_path_buf()),
            entries: Vec::new(),
        };
        if is_blank_yaml(text) {
            return Ok(out);
        }
        let value: Value = serde_yaml::from_str(text).map_err(|source| RegistryError::Yaml {
            path: origin.to_path_buf(),
            source,
        })?;
        let map = match value {
            Value::Null => return Ok(out),
            Value::Mapping(m) => m,
            other => {
                return Err(RegistryError::NotAMapping {
                    path: origin.to_path_buf(),
                    found: kind_of(&other),
                });
            }
        };
        for (key, members) in map {
            let Value::String(name) = key else {
                return Err(RegistryError::NonStringName {
                    path: origin.to_path_buf(),
                    key: format!("({})", kind_of(&key)),
                });
            };
            let invalid = |problem: String| RegistryError::InvalidMixtures {
                path: origin.to_path_buf(),
                name: name.clone(),
                problem,
            };
            // VILA chains the value as an iterable; a bare string would be split into
            // characters and null would raise, so require a list of strings.
            let Value::Sequence(seq) = members else {
                return Err(invalid(format!(
                    "expected a list of dataset names, found {}",
                    kind_of(&members)
                )));
            };
            let mut list = Vec::with_capacity(seq.len());
            for (i, m) in seq.iter().enumerate() {
                match m {
                    Value::String(s) => list.push(s.clone()),
                    other => {
                        return Err(invalid(format!(
                            "member {i} must be a string, found {}",
                            kind_of(other)
                        )));
                    }
                }
            }
            out.entries.push((name, list));
        }
        Ok(out)
    }

    /// The members of mixture `name`, as written.
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, members)| members.as_slice())
    }

    /// Mixture names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// The file these mixtures were read from.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// One dataset of a parsed mixture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MixtureItem {
    /// Registry name of the dataset.
    pub name: String,
    /// `name*N`: the dataset is repeated N times (`RepeatedDataset`); 1 without a suffix.
    pub repeat: usize,
    /// `name@subset`: VILA drops the indices listed in
    /// `$VILA_SLICE_FOLDER/<subset>/<name>.json`.
    pub subset: Option<String>,
}

/// Parses a `DATA_MIXTURE` string exactly as VILA's `llava/data/builder.py` does
/// (`parse_mixture`, then the suffix handling at the top of `build_dataset`'s loop), with
/// the extra rejections listed in the module docs. Items come back in VILA's order.
pub fn parse_mixture(
    mixture: &str,
    mixtures: Option<&Mixtures>,
) -> Result<Vec<MixtureItem>, RegistryError> {
    let fail = |problem: String| RegistryError::InvalidMixture {
        mixture: mixture.to_string(),
        problem,
        source_file: mixtures.and_then(|m| m.path.clone()),
    };
    if mixture.is_empty() {
        return Err(fail(
            "the mixture is empty; name at least one dataset".to_string(),
        ));
    }

    let mut names = Vec::new();
    for (i, element) in mixture.split('+').enumerate() {
        check_element(element).map_err(|p| fail(format!("element {i} {p}")))?;
        let mut stack = Vec::new();
        expand(element, mixtures, &mut stack, &mut names).map_err(&fail)?;
    }
    if names.is_empty() {
        return Err(fail(
            "it expands to no datasets (empty mixture list)".to_string(),
        ));
    }

    // builder.py::parse_mixture returns sorted(names): sort the raw strings, suffixes
    // included, before build_dataset interprets `@` and `*`.
    names.sort();

    names
        .iter()
        .map(|raw| parse_item(raw).map_err(&fail))
        .collect()
}

/// Appends the datasets that `element` stands for, expanding mixtures depth-first (the
/// same order VILA's repeated in-place expansion yields).
fn expand(
    element: &str,
    mixtures: Option<&Mixtures>,
    stack: &mut Vec<String>,
    out: &mut Vec<String>,
) -> Result<(), String> {
    let Some(members) = mixtures.and_then(|m| m.get(element)) else {
        out.push(element.to_string());
        return Ok(());
    };
    if stack.iter().any(|s| s == element) {
        let mut cycle = stack.join(" -> ");
        cycle.push_str(" -> ");
        cycle.push_str(element);
        return Err(format!("mixture \"{element}\" includes itself ({cycle})"));
    }
    stack.push(element.to_string());
    for member in members {
        check_element(member)
            .map_err(|p| format!("mixture \"{element}\" member {member:?} {p}"))?;
        expand(member, mixtures, stack, out)?;
    }
    stack.pop();
    Ok(())
}

fn check_element(element: &str) -> Result<(), String> {
    if element.is_empty() {
        return Err("is empty (look for '++' or a leading or trailing '+')".to_string());
    }
    if element.chars().any(char::is_whitespace) {
        return Err(format!(
            "{element:?} contains whitespace; VILA does not trim mixture names, so it would look up the name with the spaces"
        ));
    }
    Ok(())
}

/// `name[*N][@subset]`, interpreted in builder.py's order: `@` first, then `*` in the
/// part before the `@`.
fn parse_item(raw: &str) -> Result<MixtureItem, String> {
    let (head, subset) = match raw.split_once('@') {
        None => (raw, None),
        Some((head, subset)) => {
            if subset.contains('@') {
                return Err(format!("{raw:?} has more than one '@'"));
            }
            if subset.is_empty() {
                return Err(format!("{raw:?} has an empty subset after '@'"));
            }
            (head, Some(subset.to_string()))
        }
    };
    let (name, repeat) = match head.split_once('*') {
        None => (head, 1),
        Some((name, times)) => {
            if times.contains('*') {
                return Err(format!("{raw:?} has more than one '*'"));
            }
            (name, parse_repeat(raw, times)?)
        }
    };
    if name.is_empty() {
        return Err(format!("{raw:?} has an empty dataset name"));
    }
    Ok(MixtureItem {
        name: name.to_string(),
        repeat,
        subset,
    })
}

/// Python `int()` syntax (digits with single `_` between them; a `-` sign is recognised
/// only to explain the error, and `+` cannot occur since it splits the mixture); the
/// count must be at least 1.
fn parse_repeat(raw: &str, times: &str) -> Result<usize, String> {
    let bad = || format!("{raw:?}: repeat count {times:?} is not an integer");
    let (negative, digits) = match times.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, times),
    };
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !well_formed {
        return Err(bad());
    }
    let cleaned: String = digits.chars().filter(|c| *c != '_').collect();
    let value: u128 = cleaned
        .parse()
        .map_err(|_| format!("{raw:?}: repeat count {times:?} is too large"))?;
    if negative || value == 0 {
        return Err(format!(
            "{raw:?}: repeat count must be at least 1 (VILA would silently use the dataset once)"
        ));
    }
    usize::try_from(value).map_err(|_| format!("{raw:?}: repeat count {times:?} is too large"))
}
