//! Reading, merging, editing and writing registry YAML.

use std::fs;
use std::path::{Path, PathBuf};

use registry::{DatasetEntry, LLAVA_TARGET, Registry, RegistryError};
use serde_yaml::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn yaml(path: &Path) -> Value {
    serde_yaml::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn keys(value: &Value) -> Vec<String> {
    value
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn loads_entries_in_file_order_with_fields_and_extras() {
    let reg = Registry::load(&fixture("registry_multi.yaml")).unwrap();
    assert_eq!(
        reg.names().collect::<Vec<_>>(),
        ["SampleQA", "SampleVideo", "PromptedOCR", "dummy"]
    );
    assert_eq!(reg.len(), 4);

    let qa = reg.get("SampleQA").unwrap();
    assert_eq!(qa.target, LLAVA_TARGET);
    assert_eq!(
        qa.data_path,
        PathBuf::from("/dataset/vila-dataset/sample-qa/dataset.json")
    );
    assert_eq!(
        qa.media_dir,
        Some(PathBuf::from("/dataset/vila-dataset/sample-qa"))
    );
    assert!(qa.extra.is_empty());
    assert!(qa.is_llava_dataset());
    assert!(!qa.is_video());

    let video = reg.get("SampleVideo").unwrap();
    assert!(video.is_video());
    assert_eq!(
        video.extra.get("custom_note").and_then(Value::as_str),
        Some("keys VILA passes to the constructor are kept")
    );

    let ocr = reg.get("PromptedOCR").unwrap();
    assert!(ocr.has_system_prompt());
    assert_eq!(
        ocr.extra
            .get("resample_on_failure")
            .and_then(Value::as_bool),
        Some(false)
    );
    assert_eq!(ocr.extra.get("max_len").and_then(Value::as_u64), Some(4096));
    let prompts = ocr
        .extra
        .get("system_prompt")
        .and_then(Value::as_sequence)
        .unwrap();
    assert_eq!(prompts.len(), 2);

    // The DummyDataset entry has no data_path: kept, visible by name and target only.
    assert!(reg.contains("dummy"));
    assert!(reg.get("dummy").is_none());
    assert_eq!(reg.target("dummy"), Some("llava.data.DummyDataset"));
}

#[test]
fn vila_default_yaml_shape_round_trips() {
    // VILA's shipped llava/data/registry/datasets/default.yaml, verbatim.
    let path = fixture("vila_default.yaml");
    let reg = Registry::load(&path).unwrap();
    assert_eq!(reg.names().collect::<Vec<_>>(), ["dummy"]);
    assert_eq!(reg.target("dummy"), Some("llava.data.DummyDataset"));
    assert_eq!(reg.datasets().count(), 0);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("default.yaml");
    reg.save(&out).unwrap();
    assert_eq!(yaml(&out), yaml(&path));
}

#[test]
fn upsert_then_save_keeps_other_entries_and_order() {
    let src = fixture("registry_multi.yaml");
    let mut reg = Registry::load(&src).unwrap();

    // Replace one in the middle, append a new one.
    let mut changed = reg.get("SampleVideo").unwrap().clone();
    changed.data_path = PathBuf::from("/new/video.json");
    reg.upsert("SampleVideo", changed);
    reg.upsert(
        "Added",
        DatasetEntry::llava("/added/data.json".into(), "/added".into()),
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/dir/registry.yaml");
    reg.save(&out).unwrap();

    let before = yaml(&src);
    let after = yaml(&out);
    assert_eq!(
        keys(&after),
        ["SampleQA", "SampleVideo", "PromptedOCR", "dummy", "Added"]
    );
    for untouched in ["SampleQA", "PromptedOCR", "dummy"] {
        assert_eq!(after[untouched], before[untouched], "{untouched} changed");
        // Same key order inside the entry too.
        assert_eq!(keys(&after[untouched]), keys(&before[untouched]));
    }
    // The edited entry keeps its own key order and its unknown keys.
    assert_eq!(
        keys(&after["SampleVideo"]),
        [
            "media_dir",
            "_target_",
            "data_path",
            "is_video",
            "custom_note"
        ]
    );
    assert_eq!(
        after["SampleVideo"]["data_path"].as_str(),
        Some("/new/video.json")
    );
    assert_eq!(
        after["SampleVideo"]["custom_note"],
        before["SampleVideo"]["custom_note"]
    );
    // The new entry has the README's shape.
    assert_eq!(
        keys(&after["Added"]),
        ["_target_", "data_path", "media_dir"]
    );
    assert_eq!(
        after["Added"]["_target_"].as_str(),
        Some("llava.data.LLaVADataset")
    );
    assert_eq!(after["Added"]["media_dir"].as_str(), Some("/added"));

    // Reloading gives back the same entries.
    let again = Registry::load(&out).unwrap();
    assert_eq!(again.get("SampleVideo"), reg.get("SampleVideo"));
    assert_eq!(again.get("Added"), reg.get("Added"));
    assert_eq!(again.get("PromptedOCR"), reg.get("PromptedOCR"));
}

#[test]
fn upsert_replaces_an_opaque_entry_in_place() {
    let mut reg = Registry::load(&fixture("registry_multi.yaml")).unwrap();
    reg.upsert("dummy", DatasetEntry::llava("/d.json".into(), "/d".into()));
    assert_eq!(
        reg.names().collect::<Vec<_>>(),
        ["SampleQA", "SampleVideo", "PromptedOCR", "dummy"]
    );
    assert_eq!(
        reg.get("dummy").unwrap().data_path,
        PathBuf::from("/d.json")
    );
}

#[test]
fn save_is_atomic_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("registry.yaml");
    fs::write(&out, "old: {_target_: x.Y}\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&out, fs::Permissions::from_mode(0o640)).unwrap();
    }
    let mut reg = Registry::new();
    reg.upsert("A", DatasetEntry::llava("/a.json".into(), "/a".into()));
    reg.save(&out).unwrap();

    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["registry.yaml"]);
    assert_eq!(
        Registry::load(&out).unwrap().names().collect::<Vec<_>>(),
        ["A"]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "existing permissions kept");
    }
}

#[cfg(unix)]
#[test]
fn new_file_gets_readable_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fresh.yaml");
    Registry::new().save(&out).unwrap();
    let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    assert!(Registry::load(&out).unwrap().is_empty());
}

#[test]
fn load_many_later_files_replace_whole_entries_in_place() {
    let reg = Registry::load_many(&[
        fixture("registry_multi.yaml"),
        fixture("registry_override.yaml"),
    ])
    .unwrap();
    assert_eq!(
        reg.names().collect::<Vec<_>>(),
        ["SampleQA", "SampleVideo", "PromptedOCR", "dummy", "Extra"]
    );
    let qa = reg.get("SampleQA").unwrap();
    assert_eq!(qa.data_path, PathBuf::from("/override/sample-qa.json"));
    assert!(qa.no_system_prompt());
    assert_eq!(
        reg.source_of("SampleQA"),
        Some(fixture("registry_override.yaml").as_path())
    );
    assert_eq!(
        reg.source_of("SampleVideo"),
        Some(fixture("registry_multi.yaml").as_path())
    );
    assert_eq!(reg.sources().len(), 2);
}

#[test]
fn llava_constructor_matches_readme_shape() {
    let e = DatasetEntry::llava("/x/dataset.json".into(), "/x".into());
    assert_eq!(e.target, "llava.data.LLaVADataset");
    assert_eq!(e.data_path, PathBuf::from("/x/dataset.json"));
    assert_eq!(e.media_dir, Some(PathBuf::from("/x")));
    assert!(e.extra.is_empty());
    let mut reg = Registry::new();
    reg.upsert("SampleQA", e);
    let text = reg.to_yaml(Path::new("mem.yaml")).unwrap();
    assert_eq!(
        text,
        "SampleQA:\n  _target_: llava.data.LLaVADataset\n  data_path: /x/dataset.json\n  media_dir: /x\n"
    );
}

#[test]
fn empty_and_comment_only_files_are_empty_registries() {
    let dir = tempfile::tempdir().unwrap();
    for (i, text) in ["", "\n\n", "---\n", "# nothing yet\n---\n", "~\n"]
        .iter()
        .enumerate()
    {
        let p = dir.path().join(format!("e{i}.yaml"));
        fs::write(&p, text).unwrap();
        let reg = Registry::load(&p).unwrap();
        assert!(reg.is_empty(), "{text:?}");
    }
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let err = Registry::load(Path::new("/nonexistent/dir/reg.yaml")).unwrap_err();
    assert!(matches!(err, RegistryError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/dir/reg.yaml: cannot read"),
        "{err}"
    );
}

#[test]
fn malformed_yaml_is_an_error_with_location() {
    let path = fixture("malformed.yaml");
    let err = Registry::load(&path).unwrap_err();
    assert!(matches!(err, RegistryError::Yaml { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("malformed.yaml: invalid YAML"), "{msg}");
    assert!(msg.contains("line"), "{msg}");
}

#[test]
fn truncated_yaml_is_an_error() {
    let err = Registry::load(&fixture("truncated.yaml")).unwrap_err();
    assert!(matches!(err, RegistryError::Yaml { .. }), "{err:?}");
    assert!(err.to_string().contains("truncated.yaml"), "{err}");
}

#[test]
fn llava_entry_without_data_path_is_rejected() {
    let err = Registry::load(&fixture("missing_data_path.yaml")).unwrap_err();
    match &err {
        RegistryError::MissingDataPath { path, name, target } => {
            assert!(path.ends_with("missing_data_path.yaml"));
            assert_eq!(name, "NoPath");
            assert_eq!(target, "llava.data.LLaVADataset");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("entry \"NoPath\""));
}

#[test]
fn structural_errors_name_file_and_entry() {
    let origin = Path::new("/r/reg.yaml");
    let cases: &[(&str, &str)] = &[
        (
            "- a\n- b\n",
            "/r/reg.yaml: expected a mapping of names to entries at the top level, found a list",
        ),
        (
            "A:\n  data_path: /a.json\n",
            "/r/reg.yaml: entry \"A\" has no `_target_`",
        ),
        (
            "A: just a string\n",
            "/r/reg.yaml: entry \"A\": expected a mapping of arguments, found a string",
        ),
        (
            "A:\n  _target_: llava.data.LLaVADataset\n  data_path: [1]\n",
            "/r/reg.yaml: entry \"A\": `data_path` must be a non-empty string, found a list",
        ),
        (
            "A:\n  _target_: llava.data.LLaVADataset\n  data_path: /a.json\n  media_dir: 3\n",
            "/r/reg.yaml: entry \"A\": `media_dir` must be a non-empty string, found a number",
        ),
        (
            "12: {_target_: a.B}\n",
            "/r/reg.yaml: top-level key 12 is not a string",
        ),
    ];
    for (text, expected) in cases {
        let err = Registry::parse(text, origin).unwrap_err();
        assert!(err.to_string().starts_with(expected), "{text:?}: {err}");
    }
}

#[test]
fn duplicate_names_in_one_file_are_rejected() {
    let text = "A: {_target_: a.B}\nA: {_target_: a.C}\n";
    let err = Registry::parse(text, Path::new("/r/dup.yaml")).unwrap_err();
    assert!(matches!(err, RegistryError::Yaml { .. }), "{err:?}");
    assert!(err.to_string().contains("duplicate"), "{err}");
}

#[test]
fn yaml_anchors_and_merge_keys_resolve_like_pyyaml() {
    let text = "\
base: &base
  _target_: llava.data.LLaVADataset
  media_dir: /shared/media
  is_video: true
A:
  <<: *base
  data_path: /a.json
B:
  <<: *base
  data_path: /b.json
  media_dir: /own/media
";
    let reg = Registry::parse(text, Path::new("/r/anchors.yaml")).unwrap_err();
    // `base` itself is a LLaVADataset entry without data_path: rejected like any other.
    assert!(
        matches!(reg, RegistryError::MissingDataPath { ref name, .. } if name == "base"),
        "{reg:?}"
    );

    let text = text.replacen(
        "  _target_: llava.data.LLaVADataset\n",
        "  _target_: llava.data.LLaVADataset\n  data_path: /base.json\n",
        1,
    );
    let reg = Registry::parse(&text, Path::new("/r/anchors.yaml")).unwrap();
    let a = reg.get("A").unwrap();
    assert_eq!(a.target, LLAVA_TARGET);
    assert_eq!(a.data_path, PathBuf::from("/a.json"));
    assert_eq!(a.media_dir, Some(PathBuf::from("/shared/media")));
    assert!(a.is_video());
    let b = reg.get("B").unwrap();
    assert_eq!(
        b.media_dir,
        Some(PathBuf::from("/own/media")),
        "explicit keys win over merged ones"
    );
}

#[test]
fn vila_datasets_spec_resolves_repo_names_then_user_paths() {
    use registry::resolve_vila_datasets;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("llava/data/registry/datasets");
    fs::create_dir_all(&repo).unwrap();
    fs::write(repo.join("default.yaml"), "").unwrap();
    let mine = dir.path().join("mine.yaml");
    fs::write(&mine, "").unwrap();

    let spec = format!("default,{}", mine.display());
    let files = resolve_vila_datasets(&spec, &repo).unwrap();
    assert_eq!(files, [repo.join("default.yaml"), mine.clone()]);
    // ".yaml" is appended when missing.
    let no_ext = mine.with_extension("");
    assert_eq!(
        resolve_vila_datasets(no_ext.to_str().unwrap(), &repo).unwrap(),
        [mine]
    );

    let err = resolve_vila_datasets("default,nowhere", &repo).unwrap_err();
    assert!(
        matches!(err, RegistryError::RegistryFileNotFound { ref name, .. } if name == "nowhere")
    );
    assert!(
        err.to_string()
            .contains(&repo.join("nowhere.yaml").display().to_string()),
        "{err}"
    );
}
