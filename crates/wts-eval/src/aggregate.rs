//! Whole-submission caption scoring, mirroring `metrics_all.py` of the official scorer
//! (`woven-visionai/wts-dataset/evaluation/eval-metrics-AIC-Track2`).
//!
//! Reproduced behaviour and quirks of `metrics_all.py` / `utils.py`:
//! 1. Layout: `--ground_truth <root>` means internal GT under `<root>/annotations` and
//!    external GT under `<root>/external/BDD_PC_5K/annotations`; both must exist.
//!    ([`score_captions_with_dirs`] takes the two folders directly.)
//! 2. GT files are found with `glob(dir + '/**/**.json', recursive=True)`: every `*.json`
//!    at any depth (directly in the folder or nested, so BDD captions in
//!    `caption/<split>/` or directly in the folder both work); names and directories
//!    starting with `.` are skipped as Python's glob does.
//! 3. Any file whose *full path* contains `vehicle_view` is ignored (even if the
//!    substring is in the GT folder path itself).
//! 4. The scenario name is `file_name.strip("_caption.json")`: a strip of the character
//!    set `{_ c a p t i o n . j s}` from *both* ends, not suffix removal.
//! 5. If two files map to the same scenario name the later one wins; Python's order is
//!    the file-system order, here paths are sorted so the result is deterministic.
//! 6. Segments are keyed by `labels[0]`; duplicates: the last segment wins (Python dict).
//!    If `labels` is a string, `labels[0]` is its first character, as in Python.
//! 7. Predictions are filtered by key prefix: internal keeps keys starting with "2023",
//!    external keys starting with "video"; GT scenarios are *not* filtered.
//! 8. A GT scenario missing from the (filtered) predictions adds `len(event_phase)`
//!    zero-score segments (the list length, duplicates included); a GT segment missing
//!    from a present scenario adds one zero-score segment. Prediction scenarios or
//!    segments absent from the GT are ignored.
//! 9. Every segment of a prediction scenario that exists in the GT must carry
//!    `labels`, `caption_pedestrian` and `caption_vehicle` (Python raises KeyError).
//! 10. Sums are divided by the number of GT segments, separately for pedestrian and
//!     vehicle; the two means are averaged per metric and
//!     `score = (100 BLEU + 100 METEOR + 100 ROUGE-L + 10 CIDEr) / 4`; the overall score
//!     is `(internal + external) / 2`.
//! 11. A submission without external ("video…") keys: every BDD GT segment scores 0, so
//!     the external score is 0 and the overall score is half the internal one (the
//!     official script does exactly this). A GT folder without any segment makes the
//!     official script divide by zero and crash; here it is
//!     [`EvalError::NoGroundTruthSegments`].
//!
//! Intentional deviations (inputs on which the official script crashes or silently
//! scores a whole subset 0):
//! - Phase labels are normalised on both sides (digits `0`-`4` or the names
//!   prerecognition/recognition/judgement/action/avoidance, case-insensitive, also
//!   `pre-recognition` and `judgment`); the official script compares raw strings, so GT
//!   phase names would never meet digit predictions. Other labels are an error
//!   ([`EvalError::UnknownPhaseLabel`]). When both sides use the same form the numbers
//!   are identical to the official script.
//! - Empty or whitespace-only captions, in GT or predictions, are an error
//!   ([`EvalError::EmptyCaption`]); the official script would score such a prediction 0.
//! - All GT files are validated up front, also for scenarios absent from the predictions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::error::{EvalError, read_json};
use crate::tokenize::is_py_space;
use crate::wordnet::WordNet;
use crate::{PairScores, score_pair};

/// Mean metrics of one subject (pedestrian or vehicle), on the official scales.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MetricScores {
    pub bleu4: f64,
    pub meteor: f64,
    pub rouge_l: f64,
    pub cider: f64,
}

/// Bookkeeping for one subset; not part of the serialized report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubsetDiagnostics {
    /// GT segments counted in the denominator.
    pub segments: usize,
    /// Segments that were scored (the rest scored 0).
    pub scored_segments: usize,
    /// GT scenarios with no prediction.
    pub missing_scenarios: Vec<String>,
    /// `(scenario, phase)` GT segments with no prediction in a present scenario.
    pub missing_segments: Vec<(String, u8)>,
}

/// Scores of the internal (WTS) or external (BDD_PC_5K) subset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubsetReport {
    pub pedestrian: MetricScores,
    pub vehicle: MetricScores,
    /// `(100 BLEU + 100 METEOR + 100 ROUGE-L + 10 CIDEr) / 4` of the subject means, 0..=100.
    pub score: f64,
    #[serde(skip)]
    pub diagnostics: SubsetDiagnostics,
}

/// The Track 2 caption result: `{"wts": …, "bdd": …, "score"}` (the official S2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptionReport {
    pub wts: SubsetReport,
    pub bdd: SubsetReport,
    /// `(wts.score + bdd.score) / 2`, 0..=100.
    pub score: f64,
}

/// The two GT folders the scorer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroundTruthDirs {
    /// Internal (WTS) caption files, e.g. `<root>/annotations`.
    pub internal: PathBuf,
    /// External (BDD_PC_5K) caption files, e.g. `<root>/external/BDD_PC_5K/annotations`.
    pub external: PathBuf,
}

impl GroundTruthDirs {
    /// The layout `metrics_all.py --ground_truth <root>` expects.
    pub fn official_layout(root: &Path) -> GroundTruthDirs {
        GroundTruthDirs {
            internal: root.join("annotations"),
            external: root.join("external").join("BDD_PC_5K").join("annotations"),
        }
    }
}

/// Scores a caption submission against a GT folder in the official layout
/// (`<root>/annotations`, `<root>/external/BDD_PC_5K/annotations`).
pub fn score_captions(
    predictions: &Path,
    ground_truth_dir: &Path,
    wordnet: &WordNet,
) -> Result<CaptionReport, EvalError> {
    if !ground_truth_dir.is_dir() {
        return Err(EvalError::MissingGroundTruth {
            path: ground_truth_dir.to_owned(),
            what: "ground-truth root",
        });
    }
    score_captions_with_dirs(
        predictions,
        &GroundTruthDirs::official_layout(ground_truth_dir),
        wordnet,
    )
}

/// Scores a caption submission against explicit internal and external GT folders.
pub fn score_captions_with_dirs(
    predictions: &Path,
    dirs: &GroundTruthDirs,
    wordnet: &WordNet,
) -> Result<CaptionReport, EvalError> {
    for (path, what) in [
        (&dirs.internal, "internal (WTS) captions"),
        (&dirs.external, "external (BDD_PC_5K) captions"),
    ] {
        if !path.is_dir() {
            return Err(EvalError::MissingGroundTruth {
                path: path.clone(),
                what,
            });
        }
    }
    let pred = read_json(predictions)?;
    let Value::Object(pred) = pred else {
        return Err(EvalError::schema(
            predictions,
            "expected a JSON object mapping scenario/video names to segment lists",
        ));
    };
    let wts = evaluate_subset(predictions, &pred, &dirs.internal, "2023", wordnet)?;
    let bdd = evaluate_subset(predictions, &pred, &dirs.external, "video", wordnet)?;
    let score = (wts.score + bdd.score) / 2.0;
    Ok(CaptionReport { wts, bdd, score })
}

/// Phase index from a label, accepting the digit and name forms.
fn phase_index(label: &str) -> Option<u8> {
    match label.trim().to_ascii_lowercase().as_str() {
        "0" | "prerecognition" | "pre-recognition" | "pre_recognition" => Some(0),
        "1" | "recognition" => Some(1),
        "2" | "judgement" | "judgment" => Some(2),
        "3" | "action" => Some(3),
        "4" | "avoidance" => Some(4),
        _ => None,
    }
}

/// One segment's captions.
struct Segment {
    pedestrian: String,
    vehicle: String,
}

/// `utils.convert_to_dict` of one scenario: phase -> captions, in first-seen order,
/// last duplicate wins; plus the raw list length.
struct Scenario {
    list_len: usize,
    segments: Vec<(u8, Segment)>,
}

fn parse_segments(file: &Path, scenario: &str, list: &Value) -> Result<Scenario, EvalError> {
    let Value::Array(items) = list else {
        return Err(EvalError::schema(
            file,
            format!("{scenario}: expected a list of segments"),
        ));
    };
    let mut segments: Vec<(u8, Segment)> = Vec::new();
    for (k, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            return Err(EvalError::schema(
                file,
                format!("{scenario}: segment #{k} is not an object"),
            ));
        };
        let label = match obj.get("labels") {
            Some(Value::Array(l)) => match l.first() {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(_) => {
                    return Err(EvalError::schema(
                        file,
                        format!("{scenario}: segment #{k} has a non-string label"),
                    ));
                }
                None => {
                    return Err(EvalError::schema(
                        file,
                        format!("{scenario}: segment #{k} has an empty \"labels\" list"),
                    ));
                }
            },
            // Python's `"0"[0]` is the first character.
            Some(Value::String(s)) => s.chars().next().map(String::from).unwrap_or_default(),
            _ => {
                return Err(EvalError::schema(
                    file,
                    format!("{scenario}: segment #{k} is missing \"labels\""),
                ));
            }
        };
        let phase = phase_index(&label).ok_or_else(|| EvalError::UnknownPhaseLabel {
            path: file.to_owned(),
            scenario: scenario.to_owned(),
            label: label.clone(),
        })?;
        let caption = |field: &'static str| -> Result<String, EvalError> {
            match obj.get(field) {
                Some(Value::String(s)) if s.chars().all(is_py_space) => {
                    Err(EvalError::EmptyCaption {
                        path: file.to_owned(),
                        scenario: scenario.to_owned(),
                        label: label.clone(),
                        field,
                    })
                }
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(EvalError::schema(
                    file,
                    format!("{scenario}: segment {label:?}: \"{field}\" is not a string"),
                )),
                None => Err(EvalError::schema(
                    file,
                    format!("{scenario}: segment {label:?} is missing \"{field}\""),
                )),
            }
        };
        let segment = Segment {
            pedestrian: caption("caption_pedestrian")?,
            vehicle: caption("caption_vehicle")?,
        };
        match segments.iter_mut().find(|(p, _)| *p == phase) {
            Some(slot) => slot.1 = segment,
            None => segments.push((phase, segment)),
        }
    }
    Ok(Scenario {
        list_len: items.len(),
        segments,
    })
}

/// Python's `str.strip("_caption.json")`.
fn strip_caption_chars(name: &str) -> &str {
    const SET: &str = "_caption.json";
    name.trim_matches(|c: char| SET.contains(c))
}

/// `glob(dir + '/**/**.json', recursive=True)`, sorted.
fn find_json_files(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| EvalError::Io {
            path: d.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| EvalError::Io {
                path: d.clone(),
                source,
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            // `metadata` follows symlinks, like glob's `is_dir()`.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if name.ends_with(".json") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `read_gt(dir)`: scenario name -> scenario, in (sorted) file order, last file wins.
fn read_gt(dir: &Path) -> Result<Vec<(String, Scenario)>, EvalError> {
    let mut scenarios: Vec<(String, Scenario)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for path in find_json_files(dir)? {
        if path.to_string_lossy().contains("vehicle_view") {
            continue;
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = strip_caption_chars(&file_name).to_owned();
        let json = read_json(&path)?;
        let Some(event_phase) = json.get("event_phase") else {
            return Err(EvalError::schema(
                &path,
                "not a caption file: no \"event_phase\" key",
            ));
        };
        let scenario = parse_segments(&path, &name, event_phase)?;
        match index.get(&name) {
            Some(&i) => scenarios[i].1 = scenario,
            None => {
                index.insert(name.clone(), scenarios.len());
                scenarios.push((name, scenario));
            }
        }
    }
    Ok(scenarios)
}

/// Running sums of the four metrics.
#[derive(Default, Clone, Copy)]
struct Sums([f64; 4]);

impl Sums {
    fn add(&mut self, s: &PairScores) {
        self.0[0] += s.bleu4;
        self.0[1] += s.meteor;
        self.0[2] += s.rouge_l;
        self.0[3] += s.cider;
    }

    fn add_sums(&mut self, o: &Sums) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
    }

    fn mean(&self, n: usize) -> MetricScores {
        let n = n as f64;
        MetricScores {
            bleu4: self.0[0] / n,
            meteor: self.0[1] / n,
            rouge_l: self.0[2] / n,
            cider: self.0[3] / n,
        }
    }
}

/// `evaluate_one_dataset` for one subset.
fn evaluate_subset(
    predictions: &Path,
    pred: &serde_json::Map<String, Value>,
    gt_dir: &Path,
    prefix: &str,
    wordnet: &WordNet,
) -> Result<SubsetReport, EvalError> {
    let gt = read_gt(gt_dir)?;
    let mut diag = SubsetDiagnostics::default();
    // Per GT scenario: the (pred, gt) segment pairs to score.
    let mut jobs: Vec<Vec<(&Segment, &Segment)>> = Vec::new();
    let mut parsed_preds: Vec<Scenario> = Vec::new();
    let mut present: Vec<(usize, &str, &Scenario)> = Vec::new();
    for (name, scenario) in &gt {
        match pred.get(name).filter(|_| name.starts_with(prefix)) {
            None => {
                diag.segments += scenario.list_len;
                diag.missing_scenarios.push(name.clone());
            }
            Some(list) => {
                parsed_preds.push(parse_segments(predictions, name, list)?);
                present.push((parsed_preds.len() - 1, name, scenario));
            }
        }
    }
    for &(pi, name, scenario) in &present {
        let p = &parsed_preds[pi];
        let mut pairs = Vec::new();
        for (phase, gt_seg) in &scenario.segments {
            diag.segments += 1;
            match p.segments.iter().find(|(q, _)| q == phase) {
                Some((_, pred_seg)) => pairs.push((pred_seg, gt_seg)),
                None => diag.missing_segments.push((name.to_owned(), *phase)),
            }
        }
        jobs.push(pairs);
    }
    if diag.segments == 0 {
        return Err(EvalError::NoGroundTruthSegments {
            dir: gt_dir.to_owned(),
        });
    }
    // Score in parallel, then sum in the official order (scenario totals first).
    let scored: Vec<Vec<(PairScores, PairScores)>> = jobs
        .par_iter()
        .map(|pairs| {
            pairs
                .par_iter()
                .map(|(p, g)| {
                    (
                        score_pair(&p.pedestrian, &g.pedestrian, wordnet),
                        score_pair(&p.vehicle, &g.vehicle, wordnet),
                    )
                })
                .collect()
        })
        .collect();
    let (mut ped, mut veh) = (Sums::default(), Sums::default());
    for scenario in &scored {
        let (mut sp, mut sv) = (Sums::default(), Sums::default());
        for (p, v) in scenario {
            sp.add(p);
            sv.add(v);
            diag.scored_segments += 1;
        }
        ped.add_sums(&sp);
        veh.add_sums(&sv);
    }
    let pedestrian = ped.mean(diag.segments);
    let vehicle = veh.mean(diag.segments);
    let avg = |a: f64, b: f64| (a + b) / 2.0;
    let mut total = 0.0;
    total += avg(pedestrian.bleu4, vehicle.bleu4) * 100.0;
    total += avg(pedestrian.meteor, vehicle.meteor) * 100.0;
    total += avg(pedestrian.rouge_l, vehicle.rouge_l) * 100.0;
    total += avg(pedestrian.cider, vehicle.cider) * 10.0;
    Ok(SubsetReport {
        pedestrian,
        vehicle,
        score: total / 4.0,
        diagnostics: diag,
    })
}

#[cfg(test)]
mod tests {
    use super::{phase_index, strip_caption_chars};

    #[test]
    fn python_strip_quirk() {
        assert_eq!(
            strip_caption_chars("20230707_8_SN46_T1_caption.json"),
            "20230707_8_SN46_T1"
        );
        assert_eq!(strip_caption_chars("video1004_caption.json"), "video1004");
        // A character-set strip eats letters of the name too.
        assert_eq!(strip_caption_chars("scene_a_caption.json"), "ene");
        assert_eq!(strip_caption_chars("jason_caption.json"), "");
    }

    #[test]
    fn labels() {
        assert_eq!(phase_index("0"), Some(0));
        assert_eq!(phase_index("judgment"), Some(2));
        assert_eq!(phase_index("Avoidance"), Some(4));
        assert_eq!(phase_index("5"), None);
    }
}
