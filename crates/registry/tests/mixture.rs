//! DATA_MIXTURE parsing, mirroring llava/data/builder.py.

use std::path::{Path, PathBuf};

use registry::{MixtureItem, Mixtures, RegistryError, parse_mixture};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn item(name: &str, repeat: usize, subset: Option<&str>) -> MixtureItem {
    MixtureItem {
        name: name.to_string(),
        repeat,
        subset: subset.map(str::to_string),
    }
}

fn plain(names: &[&str]) -> Vec<MixtureItem> {
    names.iter().map(|n| item(n, 1, None)).collect()
}

fn err_text(mixture: &str, mixtures: Option<&Mixtures>) -> String {
    match parse_mixture(mixture, mixtures) {
        Err(e @ RegistryError::InvalidMixture { .. }) => e.to_string(),
        other => panic!("{mixture:?}: expected InvalidMixture, got {other:?}"),
    }
}

#[test]
fn single_name() {
    assert_eq!(
        parse_mixture("SampleQA", None).unwrap(),
        plain(&["SampleQA"])
    );
}

#[test]
fn plus_joined_names_are_sorted() {
    assert_eq!(parse_mixture("b+a", None).unwrap(), plain(&["a", "b"]));
    // Python sorted(): code-point order, so uppercase before lowercase.
    assert_eq!(
        parse_mixture("sampleqa+SampleVideo+Zeta", None).unwrap(),
        plain(&["SampleVideo", "Zeta", "sampleqa"])
    );
}

#[test]
fn duplicates_are_kept_not_merged() {
    assert_eq!(
        parse_mixture("a+b+a", None).unwrap(),
        plain(&["a", "a", "b"])
    );
}

#[test]
fn repeat_suffix() {
    assert_eq!(
        parse_mixture("a*3", None).unwrap(),
        vec![item("a", 3, None)]
    );
    assert_eq!(
        parse_mixture("a*1_0", None).unwrap(),
        vec![item("a", 10, None)]
    );
}

#[test]
fn sorting_happens_on_raw_strings_before_suffixes_are_parsed() {
    // '*' (0x2A) < '@' (0x40) < 'a': "b*2" sorts before "b@s", both after "a".
    assert_eq!(
        parse_mixture("b@s+b+a*9+b*2", None).unwrap(),
        vec![
            item("a", 9, None),
            item("b", 1, None),
            item("b", 2, None),
            item("b", 1, Some("s"))
        ]
    );
    // "a_x" vs "a*3": '*' < '_' so the repeated "a" comes first even though it is a
    // different dataset name prefix.
    assert_eq!(
        parse_mixture("a_x+a*3", None).unwrap(),
        vec![item("a", 3, None), item("a_x", 1, None)]
    );
}

#[test]
fn subset_suffix_and_combined_order() {
    assert_eq!(
        parse_mixture("geoqa@0.5", None).unwrap(),
        vec![item("geoqa", 1, Some("0.5"))]
    );
    assert_eq!(
        parse_mixture("sharegpt4v_sft@0.5_gqa", None).unwrap(),
        vec![item("sharegpt4v_sft", 1, Some("0.5_gqa"))]
    );
    // builder.py splits '@' first, then '*' in the name part only.
    assert_eq!(
        parse_mixture("a*3@s", None).unwrap(),
        vec![item("a", 3, Some("s"))]
    );
    assert_eq!(
        parse_mixture("a@s*3", None).unwrap(),
        vec![item("a", 1, Some("s*3"))]
    );
}

#[test]
fn names_with_slashes_and_dashes_pass_through() {
    assert_eq!(
        parse_mixture("llava-video/academic-cap+llava-video/youtube-oe", None).unwrap(),
        plain(&["llava-video/academic-cap", "llava-video/youtube-oe"])
    );
}

#[test]
fn mixtures_file_expands_nested_then_sorts() {
    let mixtures = Mixtures::load(&fixture("mixtures.yaml")).unwrap();
    assert_eq!(
        mixtures.names().collect::<Vec<_>>(),
        ["small_sft", "vflan_lite", "image_and_video", "empty_mix"]
    );
    assert_eq!(
        mixtures.get("vflan_lite").unwrap(),
        ["vqa_gqa_train", "captioning_textcap_train@half"]
    );

    let items = parse_mixture("image_and_video+extra", Some(&mixtures)).unwrap();
    assert_eq!(
        items,
        vec![
            item("alpha", 2, None),
            item("captioning_textcap_train", 1, Some("half")),
            item("extra", 1, None),
            item("llava-video/academic-cap", 1, None),
            item("vqa_gqa_train", 1, None),
            item("zeta", 1, None),
        ]
    );
}

#[test]
fn a_name_that_is_not_a_mixture_is_left_alone() {
    let mixtures = Mixtures::load(&fixture("mixtures.yaml")).unwrap();
    assert_eq!(
        parse_mixture("SampleQA", Some(&mixtures)).unwrap(),
        plain(&["SampleQA"])
    );
    // A suffixed mixture name is not a mixture name (VILA looks up the raw string).
    assert_eq!(
        parse_mixture("vflan_lite*2", Some(&mixtures)).unwrap(),
        vec![item("vflan_lite", 2, None)]
    );
}

#[test]
fn unknown_name_without_mixtures_file_is_just_a_dataset_name() {
    // Whether it exists is the registry's business (validate reports it).
    assert_eq!(
        parse_mixture("no_such_mixture", None).unwrap(),
        plain(&["no_such_mixture"])
    );
}

#[test]
fn mixture_expanding_to_nothing_is_an_error() {
    let mixtures = Mixtures::load(&fixture("mixtures.yaml")).unwrap();
    let msg = err_text("empty_mix", Some(&mixtures));
    assert!(msg.contains("expands to no datasets"), "{msg}");
    assert!(msg.contains("mixtures.yaml"), "{msg}");
}

#[test]
fn cycles_are_reported_instead_of_looping() {
    let mixtures =
        Mixtures::parse("a: [b, x]\nb: [c]\nc: [a]\n", Path::new("/m/mixtures.yaml")).unwrap();
    let msg = err_text("a", Some(&mixtures));
    assert!(
        msg.contains("mixture \"a\" includes itself (a -> b -> c -> a)"),
        "{msg}"
    );
    assert!(msg.contains("/m/mixtures.yaml"), "{msg}");
}

#[test]
fn empty_string_and_empty_elements() {
    assert!(err_text("", None).contains("the mixture is empty"));
    for bad in ["a++b", "+a", "a+"] {
        let msg = err_text(bad, None);
        assert!(msg.contains("is empty"), "{bad}: {msg}");
    }
}

#[test]
fn whitespace_is_rejected() {
    for bad in ["a + b", " a", "a\n", "a\tb"] {
        let msg = err_text(bad, None);
        assert!(msg.contains("contains whitespace"), "{bad:?}: {msg}");
    }
}

#[test]
fn malformed_suffixes() {
    let cases = [
        ("a*x", "is not an integer"),
        ("a*", "is not an integer"),
        ("a*2*3", "more than one '*'"),
        ("a@s@t", "more than one '@'"),
        ("a@", "empty subset"),
        ("*3", "empty dataset name"),
        ("@s", "empty dataset name"),
        ("a*0", "at least 1"),
        ("a*-2", "at least 1"),
        ("a*99999999999999999999999999999999999999999", "too large"),
    ];
    for (bad, expected) in cases {
        let msg = err_text(bad, None);
        assert!(msg.contains(expected), "{bad}: {msg}");
    }
}

#[test]
fn bad_mixtures_files() {
    let origin = Path::new("/m/mixtures.yaml");
    let err = Mixtures::parse("a: b\n", origin).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/m/mixtures.yaml: mixture \"a\": expected a list of dataset names, found a string"
    );
    let err = Mixtures::parse("a: [x, 3]\n", origin).unwrap_err();
    assert!(
        err.to_string().contains("member 1 must be a string"),
        "{err}"
    );
    let err = Mixtures::parse("a: [x\n", origin).unwrap_err();
    assert!(matches!(err, RegistryError::Yaml { .. }));
    assert!(
        Mixtures::parse("", origin)
            .unwrap()
            .names()
            .next()
            .is_none()
    );
    assert!(matches!(
        Mixtures::load(Path::new("/nonexistent/m.yaml")),
        Err(RegistryError::Read { .. })
    ));
    // Whitespace inside a mixture member is caught during expansion.
    let m = Mixtures::parse("a: ['x ', y]\n", origin).unwrap();
    let msg = err_text("a", Some(&m));
    assert!(
        msg.contains("member \"x \"") && msg.contains("whitespace"),
        "{msg}"
    );
}
