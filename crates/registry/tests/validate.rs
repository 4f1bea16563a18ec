//! Dataset validation: a good dataset written to a tempdir, then each kind of bad input.

use std::fs;
use std::path::{Path, PathBuf};

use registry::{
    DatasetEntry, MixtureItem, Problem, Registry, RegistryError, ValidateOptions, parse_mixture,
    validate, validate_with,
};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A tempdir with `media/` holding a few tiny files, plus helpers to write datasets.
struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("media");
        fs::create_dir_all(media.join("images")).unwrap();
        fs::create_dir_all(media.join("videos/clip2_frames")).unwrap();
        for f in [
            "images/1.jpg",
            "images/2.jpg",
            "images/3.jpg",
            "videos/clip1.mp4",
            "videos/clip2_frames/0001.jpg",
        ] {
            fs::write(media.join(f), b"not really an image").unwrap();
        }
        // A file outside media_dir that traversal attempts point at.
        fs::write(dir.path().join("secret.txt"), b"secret").unwrap();
        Env { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn media(&self) -> PathBuf {
        self.root().join("media")
    }

    fn write_json(&self, name: &str, records: &Value) -> PathBuf {
        let p = self.root().join(name);
        fs::write(&p, serde_json::to_string_pretty(records).unwrap()).unwrap();
        p
    }

    fn write_raw(&self, name: &str, text: &str) -> PathBuf {
        let p = self.root().join(name);
        fs::write(&p, text).unwrap();
        p
    }

    /// A registry with one LLaVA entry `name` for `data`, media under `media/`.
    fn registry(&self, name: &str, data: &Path) -> Registry {
        let mut reg = Registry::new();
        reg.upsert(name, DatasetEntry::llava(data.to_path_buf(), self.media()));
        reg
    }
}

fn qa(question: &str, answer: &str) -> Value {
    json!([{"from": "human", "value": question}, {"from": "gpt", "value": answer}])
}

fn items(mixture: &str) -> Vec<MixtureItem> {
    parse_mixture(mixture, None).unwrap()
}

/// Runs validation expecting failure; returns (kept problems, total).
fn problems(reg: &Registry, mixture: &str) -> (Vec<Problem>, usize) {
    match validate(reg, &items(mixture)) {
        Err(RegistryError::Validation { problems, total }) => (problems, total),
        other => panic!("expected validation problems, got {other:?}"),
    }
}

/// The single problem of a failed validation, as text.
fn only_problem(reg: &Registry, mixture: &str) -> String {
    let (kept, total) = problems(reg, mixture);
    assert_eq!(total, 1, "{kept:#?}");
    kept[0].to_string()
}

#[test]
fn happy_path_counts_and_json_report() {
    let env = Env::new();
    let qa_path = env.write_json(
        "qa.json",
        &json!([
            {"id": "0", "image": "images/1.jpg", "conversations": qa("<image>\nWhat is this?", "A cat.")},
            {"image": ["images/2.jpg", "images/3.jpg"], "images": "images/1.jpg",
             "conversations": [
                {"from": "human", "value": "Compare <image> and <image>."},
                {"from": "gpt", "value": "They differ."},
                {"from": "human", "value": "How?"},
                {"from": "system", "value": "Be brief."},
                {"from": "gpt", "value": "Colour."}
             ]},
            {"conversations": qa("Text only?", "Yes.")},
            {"image": [], "conversations": qa("Empty image list is fine", "OK")},
            {"image": "/MEDIA/images/2.jpg", "conversations": qa("Absolute path inside media_dir", "OK")}
        ]),
    );
    // An absolute path inside media_dir is allowed: os.path.join keeps it as is.
    let text = fs::read_to_string(&qa_path)
        .unwrap()
        .replace("/MEDIA", env.media().to_str().unwrap());
    fs::write(&qa_path, text).unwrap();

    let video_path = env.write_raw(
        "video.jsonl",
        &[
            json!({"video": "videos/clip1.mp4", "conversations": qa("<video>\nDescribe.", "A road.")}),
            json!({"video": ["videos/clip2_frames"], "conversations": qa("And this?", "Frames.")}),
        ]
        .iter()
        .map(|v| v.to_string() + "\n")
        .collect::<String>(),
    );

    let mut reg = env.registry("qa", &qa_path);
    reg.upsert("vid", DatasetEntry::llava(video_path.clone(), env.media()));

    let report = validate(&reg, &items("vid*3+qa")).unwrap();
    assert_eq!(report.datasets.len(), 2);
    let q = &report.datasets[0];
    assert_eq!((q.name.as_str(), q.repeat), ("qa", 1));
    assert_eq!(q.counts.records, 5);
    assert_eq!(q.counts.images, 5);
    assert_eq!(q.counts.videos, 0);
    assert_eq!(q.counts.human_turns, 6);
    assert_eq!(q.counts.gpt_turns, 6);
    assert_eq!(q.counts.system_turns, 1);
    assert!(!q.is_video);
    let v = &report.datasets[1];
    assert_eq!((v.name.as_str(), v.repeat), ("vid", 3));
    assert_eq!(
        (v.counts.records, v.counts.videos, v.counts.images),
        (2, 2, 0)
    );
    assert!(v.is_video, "inferred from the `video` key as VILA does");
    assert_eq!(report.samples_per_epoch, 5 + 2 * 3);

    let js = serde_json::to_value(&report).unwrap();
    assert_eq!(js["datasets"][0]["name"], "qa");
    assert_eq!(js["datasets"][0]["records"], 5);
    assert_eq!(js["datasets"][0]["images"], 5);
    assert_eq!(js["datasets"][0]["human_turns"], 6);
    assert_eq!(js["datasets"][0]["gpt_turns"], 6);
    assert_eq!(js["datasets"][1]["repeat"], 3);
    assert_eq!(js["datasets"][1]["data_path"], video_path.to_str().unwrap());
    assert_eq!(js["samples_per_epoch"], 11);
}

#[test]
fn a_dataset_named_twice_is_reported_per_item() {
    let env = Env::new();
    let data = env.write_json(
        "d.json",
        &json!([{"image": "images/1.jpg", "conversations": qa("q", "a")}]),
    );
    let reg = env.registry("d", &data);
    let report = validate(&reg, &items("d+d*2")).unwrap();
    assert_eq!(report.datasets.len(), 2);
    assert_eq!(report.datasets[0].counts, report.datasets[1].counts);
    assert_eq!(report.samples_per_epoch, 3);
}

#[test]
fn exact_message_for_traversal() {
    let env = Env::new();
    let records: Vec<Value> = (0..18)
        .map(|i| {
            let image = if i == 17 {
                "../../etc/passwd"
            } else {
                "images/1.jpg"
            };
            json!({"image": image, "conversations": qa("q", "a")})
        })
        .collect();
    let data = env.write_json("dataset.json", &Value::Array(records));
    let reg = env.registry("d", &data);
    assert_eq!(
        only_problem(&reg, "d"),
        format!(
            "{}: record 17: image \"../../etc/passwd\" escapes media_dir {}",
            data.display(),
            env.media().display()
        )
    );
}

#[test]
fn traversal_to_an_existing_file_is_rejected() {
    let env = Env::new();
    let data = env.write_json(
        "d.json",
        &json!([{"images": ["images/1.jpg", "images/../../secret.txt"], "conversations": qa("q", "a")}]),
    );
    let msg = only_problem(&env.registry("d", &data), "d");
    assert!(
        msg.contains("record 0: image \"images/../../secret.txt\" escapes media_dir"),
        "{msg}"
    );
}

#[test]
fn absolute_path_outside_media_dir_is_rejected() {
    let env = Env::new();
    let secret = env.root().join("secret.txt");
    let data = env.write_json(
        "d.json",
        &json!([{"image": secret.to_str().unwrap(), "conversations": qa("q", "a")}]),
    );
    let msg = only_problem(&env.registry("d", &data), "d");
    assert!(
        msg.contains(&format!(
            "record 0: image {:?} escapes media_dir",
            secret.to_str().unwrap()
        )),
        "{msg}"
    );
}

#[cfg(unix)]
#[test]
fn symlink_escaping_media_dir_is_rejected() {
    let env = Env::new();
    std::os::unix::fs::symlink(
        env.root().join("secret.txt"),
        env.media().join("images/link.jpg"),
    )
    .unwrap();
    // A symlinked directory pointing outside, used by a video path.
    std::os::unix::fs::symlink(env.root(), env.media().join("videos/outside")).unwrap();
    // A symlink that stays inside is fine.
    std::os::unix::fs::symlink(
        env.media().join("images/1.jpg"),
        env.media().join("images/alias.jpg"),
    )
    .unwrap();
    let data = env.write_json(
        "d.json",
        &json!([
            {"image": "images/alias.jpg", "conversations": qa("q", "a")},
            {"image": "images/link.jpg", "conversations": qa("q", "a")},
            {"video": "videos/outside/secret.txt", "conversations": qa("q", "a")}
        ]),
    );
    let (kept, total) = problems(&env.registry("d", &data), "d");
    assert_eq!(total, 2, "{kept:#?}");
    let canonical_secret = fs::canonicalize(env.root().join("secret.txt")).unwrap();
    assert_eq!(kept[0].record, Some(1));
    assert_eq!(
        kept[0].message,
        format!(
            "image \"images/link.jpg\" resolves to {}, outside media_dir {}",
            canonical_secret.display(),
            env.media().display()
        )
    );
    assert_eq!(kept[1].record, Some(2));
    assert!(
        kept[1]
            .message
            .starts_with("video \"videos/outside/secret.txt\" resolves to"),
        "{}",
        kept[1]
    );
}

#[test]
fn missing_media_is_reported() {
    let env = Env::new();
    let data = env.write_json(
        "d.json",
        &json!([
            {"image": "images/1.jpg", "conversations": qa("q", "a")},
            {"image": ["images/1.jpg", "images/missing.jpg"], "conversations": qa("q", "a")},
            {"video": "videos/nope.mp4", "conversations": qa("q", "a")},
            {"image": "images", "conversations": qa("q", "a")}
        ]),
    );
    let (kept, total) = problems(&env.registry("d", &data), "d");
    assert_eq!(total, 3, "{kept:#?}");
    assert_eq!(kept[0].record, Some(1));
    assert_eq!(
        kept[0].message,
        format!(
            "image \"images/missing.jpg\" not found: {} does not exist",
            env.media().join("images/missing.jpg").display()
        )
    );
    assert_eq!(kept[1].record, Some(2));
    assert!(
        kept[1]
            .message
            .starts_with("video \"videos/nope.mp4\" not found")
    );
    assert_eq!(kept[2].record, Some(3));
    assert!(
        kept[2]
            .message
            .starts_with("image \"images\" is not a file"),
        "{}",
        kept[2]
    );
}

#[test]
fn first_turn_from_gpt_is_rejected() {
    let env = Env::new();
    let data = env.write_json(
        "d.json",
        &json!([
            {"conversations": qa("q", "a")},
            {"conversations": [{"from": "gpt", "value": "I speak first"}, {"from": "human", "value": "q"}]}
        ]),
    );
    assert_eq!(
        only_problem(&env.registry("d", &data), "d"),
        format!(
            "{}: record 1: first message is from \"gpt\"; VILA requires \"human\" (LLaVADataset.process raises ValueError)",
            data.display()
        )
    );
}

#[test]
fn conversation_shape_problems() {
    let env = Env::new();
    let data = env.write_json(
        "d.json",
        &json!([
            {"image": "images/1.jpg"},
            {"conversations": []},
            {"conversations": "hello"},
            {"conversations": [{"from": "human", "value": "  "}, {"from": "gpt", "value": "a"}]},
            {"conversations": [{"from": "human", "value": "q"}, {"from": "assistant", "value": "a"}]},
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt"}]},
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": 3}]},
            {"conversations": [{"value": "q"}]},
            {"conversations": ["q"]},
            "not an object",
            {"image": 5, "conversations": qa("q", "a")}
        ]),
    );
    let (kept, total) = problems(&env.registry("d", &data), "d");
    let got: Vec<(Option<usize>, &str)> = kept
        .iter()
        .map(|p| (p.record, p.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some(0), "has no \"conversations\""),
            (Some(1), "\"conversations\" is empty"),
            (Some(2), "\"conversations\" must be a list, found a string"),
            (Some(3), "message 0 has an empty \"value\""),
            (
                Some(4),
                "message 1 has sender \"assistant\"; VILA accepts \"human\", \"gpt\" and \"system\""
            ),
            (Some(5), "message 1 has no \"value\""),
            (
                Some(6),
                "message 1 \"value\" must be a string, found a number"
            ),
            (Some(7), "message 0 has no string \"from\""),
            (Some(8), "message 0 must be an object, found a string"),
            (Some(9), "expected a JSON object, found a string"),
            (
                Some(10),
                "\"image\" entries must be path strings, found a number"
            ),
        ]
    );
    assert_eq!(total, 11);
    assert!(kept.iter().all(|p| p.file == data));
}

#[test]
fn malformed_json_is_reported_with_location() {
    let env = Env::new();
    let data = env.write_raw("bad.json", "[{\"conversations\": [}]");
    let msg = only_problem(&env.registry("d", &data), "d");
    assert!(
        msg.starts_with(&format!("{}: invalid JSON: ", data.display())),
        "{msg}"
    );
    assert!(msg.contains("line 1 column"), "{msg}");
}

#[test]
fn truncated_json_is_reported_after_the_last_good_record() {
    let env = Env::new();
    let good = json!({"image": "images/1.jpg", "conversations": qa("q", "a")}).to_string();
    let data = env.write_raw(
        "cut.json",
        &format!("[{good}, {good}, {{\"conversations\": [{{\"from\": \"hu"),
    );
    let msg = only_problem(&env.registry("d", &data), "d");
    assert!(
        msg.starts_with(&format!(
            "{}: invalid JSON after record 1: EOF",
            data.display()
        )),
        "{msg}"
    );
}

#[test]
fn top_level_must_be_a_list() {
    let env = Env::new();
    let data = env.write_json("obj.json", &json!({"conversations": qa("q", "a")}));
    let msg = only_problem(&env.registry("d", &data), "d");
    assert!(msg.contains("expected a JSON array of records"), "{msg}");
}

#[test]
fn jsonl_bad_and_blank_lines_are_reported_per_line() {
    let env = Env::new();
    let good = json!({"conversations": qa("q", "a")}).to_string();
    let data = env.write_raw(
        "d.jsonl",
        &format!("{good}\n{{\"conversations\": \n\n{good}\n"),
    );
    let (kept, total) = problems(&env.registry("d", &data), "d");
    assert_eq!(total, 2, "{kept:#?}");
    assert_eq!(kept[0].record, Some(1));
    assert!(
        kept[0].message.starts_with("invalid JSON: EOF"),
        "{}",
        kept[0]
    );
    assert_eq!(kept[1].record, Some(2));
    assert!(kept[1].message.starts_with("blank line"), "{}", kept[1]);
}

#[test]
fn unknown_dataset_lists_known_names() {
    let env = Env::new();
    let data = env.write_json("d.json", &json!([{"conversations": qa("q", "a")}]));
    let mut reg = env.registry("beta", &data);
    reg.upsert("alpha", DatasetEntry::llava(data.clone(), env.media()));
    let msg = only_problem(&reg, "alpha+gamma");
    assert!(
        msg.contains("dataset \"gamma\" is not in the registry"),
        "{msg}"
    );
    assert!(msg.ends_with("known datasets: alpha, beta"), "{msg}");
}

#[test]
fn unknown_dataset_names_the_registry_file() {
    let env = Env::new();
    let reg_path = env.root().join("reg.yaml");
    env.registry(
        "a",
        &env.write_json("d.json", &json!([{"conversations": qa("q", "a")}])),
    )
    .save(&reg_path)
    .unwrap();
    let reg = Registry::load(&reg_path).unwrap();
    let (kept, _) = problems(&reg, "nope");
    assert_eq!(kept[0].file, reg_path);
    assert!(
        kept[0]
            .to_string()
            .starts_with(&format!("{}: dataset \"nope\"", reg_path.display()))
    );
}

#[test]
fn missing_data_path_file_is_reported() {
    let env = Env::new();
    let ghost = env.root().join("ghost.json");
    let msg = only_problem(&env.registry("g", &ghost), "g");
    assert!(
        msg.starts_with(&format!("{}: data_path of dataset \"g\"", ghost.display())),
        "{msg}"
    );
    assert!(msg.contains("does not exist"), "{msg}");
}

#[test]
fn unsupported_data_path_extension_and_hf_urls() {
    let env = Env::new();
    let csv = env.write_raw("d.csv", "x");
    let msg = only_problem(&env.registry("c", &csv), "c");
    assert!(msg.contains("must end in .json or .jsonl"), "{msg}");
    let hf = PathBuf::from("hf-datasets://Org/repo/train.json");
    let msg = only_problem(&env.registry("h", &hf), "h");
    assert!(msg.contains("Hugging Face URL"), "{msg}");
}

#[test]
fn empty_dataset_is_reported() {
    let env = Env::new();
    let data = env.write_json("empty.json", &json!([]));
    let msg = only_problem(&env.registry("e", &data), "e");
    assert!(msg.contains("has no records"), "{msg}");
}

#[test]
fn missing_media_dir_is_one_problem() {
    let env = Env::new();
    let data = env.write_json(
        "d.json",
        &json!([{"image": "images/1.jpg", "conversations": qa("q", "a")}]),
    );
    let mut reg = Registry::new();
    reg.upsert(
        "d",
        DatasetEntry::llava(data, env.root().join("no-such-media")),
    );
    let msg = only_problem(&reg, "d");
    assert!(
        msg.contains(&format!(
            "media_dir {} does not exist",
            env.root().join("no-such-media").display()
        )),
        "{msg}"
    );
}

#[test]
fn media_without_media_dir_is_one_summarised_problem() {
    let env = Env::new();
    let data = env.write_json(
        "d.json",
        &json!([
            {"conversations": qa("q", "a")},
            {"image": "images/1.jpg", "conversations": qa("q", "a")},
            {"video": "videos/clip1.mp4", "conversations": qa("q", "a")}
        ]),
    );
    let mut entry = DatasetEntry::llava(data, env.media());
    entry.media_dir = None;
    let mut reg = Registry::new();
    reg.upsert("d", entry);
    let msg = only_problem(&reg, "d");
    assert!(msg.contains("has no media_dir but 2 record(s)"), "{msg}");
    assert!(msg.contains("(first: record 1)"), "{msg}");
}

#[test]
fn problems_are_collected_up_to_the_cap() {
    let env = Env::new();
    let records: Vec<Value> = (0..30)
        .map(|i| json!({"image": format!("images/missing{i}.jpg"), "conversations": qa("q", "a")}))
        .collect();
    let data = env.write_json("d.json", &Value::Array(records));
    let reg = env.registry("d", &data);
    let err = validate(&reg, &items("d+unknown")).unwrap_err();
    let RegistryError::Validation { problems, total } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*total, 31);
    assert_eq!(problems.len(), 20);
    let indices: Vec<_> = problems.iter().map(|p| p.record).collect();
    assert_eq!(indices, (0..20).map(Some).collect::<Vec<_>>());
    let text = err.to_string();
    assert!(
        text.starts_with("dataset validation found 31 problems:\n  "),
        "{text}"
    );
    assert!(
        text.ends_with("... and 11 more (only the first 20 are listed)"),
        "{text}"
    );

    // A larger cap keeps them all, the unknown dataset included.
    let opts = ValidateOptions {
        max_problems: 100,
        ..ValidateOptions::default()
    };
    let Err(RegistryError::Validation { problems, total }) =
        validate_with(&reg, &items("d+unknown"), &opts)
    else {
        panic!("expected problems");
    };
    assert_eq!((problems.len(), total), (31, 31));
    assert!(
        problems[30]
            .message
            .contains("\"unknown\" is not in the registry")
    );
}

#[test]
fn entries_without_data_path_or_other_targets_cannot_be_validated() {
    let env = Env::new();
    let reg_path = env.write_raw(
        "reg.yaml",
        "dummy:\n  _target_: llava.data.DummyDataset\n  num_instances: 10\n\
         next:\n  _target_: llava.data.LLaVANextDataset\n  data_path: /n.json\n  media_dir: /n\n",
    );
    let reg = Registry::load(&reg_path).unwrap();
    let (kept, total) = problems(&reg, "dummy+next");
    assert_eq!(total, 2);
    assert!(
        kept[0]
            .message
            .contains("\"dummy\" (target llava.data.DummyDataset) has no data_path"),
        "{}",
        kept[0]
    );
    assert!(
        kept[1]
            .message
            .contains("target llava.data.LLaVANextDataset is not llava.data.LLaVADataset")
    );
    assert!(kept.iter().all(|p| p.file == reg_path));
}

#[test]
fn system_prompt_options_are_checked() {
    let env = Env::new();
    let data = env.write_json(
        "d.json",
        &json!([{"conversations": [
            {"from": "human", "value": "q"},
            {"from": "system", "value": "s"},
            {"from": "gpt", "value": "a"}
        ]}]),
    );
    let mut entry = DatasetEntry::llava(data.clone(), env.media());
    entry.extra.insert("no_system_prompt".into(), true.into());
    entry
        .extra
        .insert("system_prompt".into(), "Be nice.".into());
    let mut reg = Registry::new();
    reg.upsert("d", entry);
    let (kept, total) = problems(&reg, "d");
    assert_eq!(total, 2, "{kept:#?}");
    assert!(
        kept[0]
            .message
            .contains("sets both system_prompt and no_system_prompt")
    );
    assert_eq!(kept[1].record, Some(0));
    assert!(
        kept[1]
            .message
            .contains("message 1 is a system message but the entry sets no_system_prompt")
    );
}

#[test]
fn subsets_are_checked_against_the_slice_folder() {
    let env = Env::new();
    let records: Vec<Value> = (0..5)
        .map(|_| json!({"conversations": qa("q", "a")}))
        .collect();
    let data = env.write_json("d.json", &Value::Array(records));
    let reg = env.registry("d", &data);
    let slices = env.root().join("slices");
    fs::create_dir_all(slices.join("half")).unwrap();
    // Duplicates and out-of-range indices are ignored, as VILA's set difference does.
    fs::write(slices.join("half/d.json"), "[0, 2, 2, 99]").unwrap();
    let opts = ValidateOptions {
        slice_folder: Some(slices.clone()),
        ..ValidateOptions::default()
    };
    let report = validate_with(&reg, &items("d@half*2"), &opts).unwrap_err();
    // `d@half*2`: the subset is "half*2" (builder.py splits '@' first), whose file is missing.
    let RegistryError::Validation { problems, .. } = report else {
        panic!()
    };
    assert_eq!(problems[0].file, slices.join("half*2/d.json"));

    let report = validate_with(&reg, &items("d*2@half"), &opts).unwrap();
    assert_eq!(report.datasets[0].subset_records, Some(3));
    assert_eq!(report.samples_per_epoch, 6);

    // Without a slice folder the subset is reported but not applied.
    let report = validate(&reg, &items("d*2@half")).unwrap();
    assert_eq!(report.datasets[0].subset.as_deref(), Some("half"));
    assert_eq!(report.datasets[0].subset_records, None);
    assert_eq!(report.samples_per_epoch, 10);

    fs::write(slices.join("half/d.json"), "[0, \"x\"]").unwrap();
    let Err(RegistryError::Validation { problems, .. }) =
        validate_with(&reg, &items("d@half"), &opts)
    else {
        panic!()
    };
    assert!(
        problems[0]
            .message
            .contains("element 1 is not a record index")
    );
}
