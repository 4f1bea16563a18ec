//! Which modules get an adapter, by module path, with PEFT's semantics
//! (`peft/tuners/tuners_utils.py::check_target_module_exists`), and VILA's default list
//! (`llava/train/train.py::find_all_linear_names`).
//!
//! PEFT's rules, reproduced here:
//! - `target_modules` as a string is a regex that must match the whole path (`re.fullmatch`);
//! - as a list, a path is selected when it equals an entry or ends with `.` + an entry;
//! - `exclude_modules` is read the same way and wins over `target_modules`;
//! - a path inside a `modules_to_save` module is never targeted;
//! - `layers_to_transform` (list targets only) keeps paths whose first numbered segment after
//!   `layers_pattern` (or after any segment) is one of the given indices.
//!
//! Patterns use Rust's `regex` syntax, which matches Python's `re` for everything PEFT configs use
//! in practice; look-around and back-references are refused with an error.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::{AdapterConfig, OneOrMany};
use crate::error::LoraError;

/// PEFT's `target_modules` / `exclude_modules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// A regex the whole module path must match.
    Regex(String),
    /// Module names: exact paths or `.`-separated suffixes.
    Names(Vec<String>),
}

/// One module of the model being adapted, as the caller enumerates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Dotted path, as PyTorch's `named_modules()` names it (`llm.model.layers.0.mlp.up_proj`).
    pub path: String,
    /// Whether it is a linear layer (the only kind this crate adapts).
    pub is_linear: bool,
}

impl ModuleInfo {
    /// A linear layer at `path`.
    pub fn linear(path: impl Into<String>) -> Self {
        ModuleInfo {
            path: path.into(),
            is_linear: true,
        }
    }

    /// Any other module at `path` (a container, a norm, an embedding, ...).
    pub fn other(path: impl Into<String>) -> Self {
        ModuleInfo {
            path: path.into(),
            is_linear: false,
        }
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    Regex(Regex),
    Names(Vec<String>),
}

impl Matcher {
    fn new(modules: &TargetModules, what: &str) -> Result<Self, LoraError> {
        match modules {
            TargetModules::Regex(pattern) => {
                if pattern.eq_ignore_ascii_case("all-linear") {
                    return Err(LoraError::Target(format!(
                        "{what} = \"all-linear\" is PEFT shorthand resolved against a torch model; \
                         pass the list of linear module paths (e.g. from find_all_linear_names)"
                    )));
                }
                Regex::new(&format!("^(?:{pattern})$"))
                    .map(Matcher::Regex)
                    .map_err(|e| LoraError::Target(format!("{what} regex {pattern:?}: {e}")))
            }
            TargetModules::Names(names) => Ok(Matcher::Names(names.clone())),
        }
    }

    /// Exact-name-or-suffix for lists, full match for a regex.
    fn matches(&self, path: &str) -> bool {
        match self {
            Matcher::Regex(re) => re.is_match(path),
            Matcher::Names(names) => names.iter().any(|name| {
                path == name
                    || path
                        .strip_suffix(name.as_str())
                        .is_some_and(|head| head.ends_with('.'))
            }),
        }
    }
}

/// `layers_to_transform` with its `layers_pattern`.
#[derive(Debug, Clone)]
struct LayerFilter {
    indices: Vec<usize>,
    /// One regex per pattern, each capturing `idx`; PEFT's default when no pattern is given.
    patterns: Vec<Regex>,
}

impl LayerFilter {
    fn new(indices: Vec<usize>, patterns: &[String]) -> Result<Self, LoraError> {
        let sources: Vec<String> = if patterns.is_empty() {
            // Lazy: the first numbered segment, not a nested one (`layers.1.experts.0`).
            vec![r"^.*?\.[^.]*\.(?P<idx>\d+)\.".into()]
        } else {
            patterns
                .iter()
                .map(|p| format!(r"^(?:^|.*?\.){p}\.(?P<idx>\d+)\."))
                .collect()
        };
        let patterns = sources
            .iter()
            .map(|s| {
                Regex::new(s).map_err(|e| LoraError::Target(format!("layers_pattern {s:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(LayerFilter { indices, patterns })
    }

    fn keeps(&self, path: &str) -> bool {
        let index = self
            .patterns
            .iter()
            .find_map(|re| re.captures(path))
            .and_then(|caps| caps.name("idx")?.as_str().parse::<usize>().ok());
        index.is_some_and(|i| self.indices.contains(&i))
    }
}

/// Decides, path by path, which modules take an adapter (see the module docs for the rules).
#[derive(Debug, Clone)]
pub struct TargetSelector {
    target: Option<Matcher>,
    exclude: Option<Matcher>,
    modules_to_save: Vec<Regex>,
    layers: Option<LayerFilter>,
}

impl TargetSelector {
    /// Selects `target` (no exclusions).
    pub fn new(target: &TargetModules) -> Result<Self, LoraError> {
        Ok(TargetSelector {
            target: Some(Matcher::new(target, "target_modules")?),
            exclude: None,
            modules_to_save: Vec::new(),
            layers: None,
        })
    }

    /// Also never selects what `exclude` matches.
    pub fn with_exclude(mut self, exclude: &TargetModules) -> Result<Self, LoraError> {
        self.exclude = Some(Matcher::new(exclude, "exclude_modules")?);
        Ok(self)
    }

    /// The selector an adapter config describes (`target_modules`, `exclude_modules`,
    /// `modules_to_save`, `layers_to_transform`, `layers_pattern`).
    pub fn from_config(config: &AdapterConfig) -> Result<Self, LoraError> {
        let target = config
            .target_modules
            .as_ref()
            .map(|t| Matcher::new(t, "target_modules"))
            .transpose()?;
        let exclude = config
            .exclude_modules
            .as_ref()
            .map(|t| Matcher::new(t, "exclude_modules"))
            .transpose()?;
        let modules_to_save = config
            .modules_to_save
            .iter()
            .flatten()
            .map(|m| {
                Regex::new(&format!(r"^(^|.*\.){m}($|\..*)"))
                    .map_err(|e| LoraError::Target(format!("modules_to_save {m:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let indices = config
            .layers_to_transform
            .as_ref()
            .map(|l| l.to_vec())
            .unwrap_or_default();
        let is_single = matches!(config.layers_to_transform, Some(OneOrMany::One(_)));
        let layers = if is_single || !indices.is_empty() {
            // PEFT: `None`, `""` and `[]` all mean "any layer list".
            let patterns = match &config.layers_pattern {
                None => Vec::new(),
                Some(OneOrMany::One(p)) if p.is_empty() => Vec::new(),
                Some(p) => p.to_vec(),
            };
            Some(LayerFilter::new(indices, &patterns)?)
        } else {
            None
        };
        Ok(TargetSelector {
            target,
            exclude,
            modules_to_save,
            layers,
        })
    }

    /// PEFT's `check_target_module_exists(config, path)` as a boolean.
    pub fn matches(&self, path: &str) -> bool {
        if self.exclude.as_ref().is_some_and(|m| m.matches(path)) {
            return false;
        }
        if self.modules_to_save.iter().any(|re| re.is_match(path)) {
            return false;
        }
        match &self.target {
            None => false,
            Some(Matcher::Regex(re)) => re.is_match(path),
            Some(names @ Matcher::Names(list)) => {
                if list.iter().any(|n| n == path) {
                    // An exact name is taken as given; the layer filter only narrows suffixes.
                    return true;
                }
                names.matches(path) && self.layers.as_ref().is_none_or(|l| l.keeps(path))
            }
        }
    }

    /// The paths of the modules to adapt, in the order given.
    ///
    /// # Errors
    ///
    /// [`LoraError::Target`] when a selected module is not linear (PEFT: "Target module ... is
    /// not supported") or when nothing is selected (PEFT: "Target modules ... not found").
    pub fn select(&self, modules: &[ModuleInfo]) -> Result<Vec<String>, LoraError> {
        let mut selected = Vec::new();
        for module in modules.iter().filter(|m| self.matches(&m.path)) {
            if !module.is_linear {
                return Err(LoraError::Target(format!(
                    "module {:?} matches target_modules but is not a Linear layer; only Linear \
                     layers can take LoRA here",
                    module.path
                )));
            }
            selected.push(module.path.clone());
        }
        if selected.is_empty() {
            return Err(LoraError::Target(
                "target_modules matched no module of the model; check target_modules, \
                 exclude_modules and layers_to_transform"
                    .into(),
            ));
        }
        Ok(selected)
    }
}

/// VILA's `find_all_linear_names(model, lora_llm, lora_vt)`: every linear layer whose path
/// contains none of `mm_projector`, `vision_resampler`, `llm` (unless `lora_llm`),
/// `vision_tower` (unless `lora_vt`), nor `lm_head`. Sorted (VILA returns a set as a list).
///
/// The keywords are substrings, as in VILA: `"llm"` also skips any path merely containing it.
///
/// # Errors
///
/// [`LoraError::Target`] when both flags are false (VILA asserts).
pub fn find_all_linear_names(
    modules: &[ModuleInfo],
    lora_llm: bool,
    lora_vt: bool,
) -> Result<Vec<String>, LoraError> {
    if !lora_llm && !lora_vt {
        return Err(LoraError::Target(
            "Not applying LoRA to any of the modules: lora_llm and lora_vt are both false".into(),
        ));
    }
    let mut skip = vec!["mm_projector", "vision_resampler"];
    if !lora_llm {
        skip.push("llm");
    }
    if !lora_vt {
        skip.push("vision_tower");
    }
    let mut names: Vec<String> = modules
        .iter()
        .filter(|m| m.is_linear && !m.path.contains("lm_head"))
        .filter(|m| !skip.iter().any(|k| m.path.contains(k)))
        .map(|m| m.path.clone())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> TargetModules {
        TargetModules::Names(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn list_matches_exact_or_dot_suffix() {
        let s = TargetSelector::new(&names(&["q_proj", "mlp.fc1"])).unwrap();
        assert!(s.matches("q_proj"));
        assert!(s.matches("a.b.q_proj"));
        assert!(!s.matches("a.b.xq_proj"));
        assert!(!s.matches("a.q_proj.inner"));
        assert!(s.matches("x.mlp.fc1"));
        assert!(!s.matches("x.mlpfc1"));
    }

    #[test]
    fn regex_is_a_full_match_and_exclusions_win() {
        let s = TargetSelector::new(&TargetModules::Regex(r".*\.q_proj".into()))
            .unwrap()
            .with_exclude(&names(&["layers.1.q_proj"]))
            .unwrap();
        assert!(s.matches("layers.0.q_proj"));
        assert!(!s.matches("layers.1.q_proj"));
        assert!(!s.matches("layers.0.q_proj.x"));
        assert!(!s.matches("q_proj"));
    }

    #[test]
    fn select_refuses_non_linear_and_empty() {
        let modules = [
            ModuleInfo::other("layers"),
            ModuleInfo::linear("layers.0.fc"),
        ];
        let s = TargetSelector::new(&names(&["fc"])).unwrap();
        assert_eq!(s.select(&modules).unwrap(), vec!["layers.0.fc"]);
        let e = TargetSelector::new(&names(&["layers"]))
            .unwrap()
            .select(&modules)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a Linear"), "{e}");
        let e = TargetSelector::new(&names(&["nope"]))
            .unwrap()
            .select(&modules)
            .unwrap_err()
            .to_string();
        assert!(e.contains("matched no module"), "{e}");
    }

    #[test]
    fn bad_regexes_and_all_linear_are_errors() {
        assert!(TargetSelector::new(&TargetModules::Regex("(".into())).is_err());
        assert!(TargetSelector::new(&TargetModules::Regex("(?=x)".into())).is_err());
        let e = TargetSelector::new(&TargetModules::Regex("all-linear".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("find_all_linear_names"), "{e}");
    }

    #[test]
    fn vila_refuses_no_targets() {
        assert!(find_all_linear_names(&[], false, false).is_err());
    }
}
