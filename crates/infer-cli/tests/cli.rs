//! Runs the built `infer-cli` binary on the tiny golden checkpoint (`fixtures/golden/tiny-nvila`)
//! with a test image of the processor fixtures: output formats, determinism, and errors that
//! name the offending file or argument.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir() -> String {
    repo()
        .join("fixtures/golden/tiny-nvila")
        .display()
        .to_string()
}

fn image(name: &str) -> String {
    repo()
        .join("crates/nvila-model/tests/fixtures/processor/images")
        .join(name)
        .display()
        .to_string()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infer-cli"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Runs and requires success.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// Runs, requires failure, returns stderr.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        stdout(&out)
    );
    assert!(
        stdout(&out).is_empty(),
        "{args:?} printed {:?}",
        stdout(&out)
    );
    stderr(&out)
}

fn json(text: &str) -> Value {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected: {text:?}");
    serde_json::from_str(lines[0]).unwrap()
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn generate_args<'a>(model: &'a str, img: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "generate",
        "--model",
        model,
        "--image",
        img,
        "--prompt",
        "Describe the image.",
        "--max-new-tokens",
        "12",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn generate_streams_the_same_text_as_json_reports() {
    let (model, img) = (model_dir(), image("square50.png"));
    let streamed = ok(&generate_args(&model, &img, &[]));
    let j = json(&ok(&generate_args(&model, &img, &["--json"])));
    let text = j["text"].as_str().unwrap();
    assert_eq!(streamed, format!("{text}\n"));
    let ids = u64s(&j["token_ids"]);
    assert_eq!(j["new_tokens"].as_u64().unwrap() as usize, ids.len());
    assert!(!ids.is_empty() && ids.len() <= 12, "{ids:?}");
    assert!(ids.iter().all(|&id| id < 512));
    // The prompt holds the chat template, the text and the image features.
    assert!(j["prompt_tokens"].as_u64().unwrap() > 10);
    assert!(j["seconds"].as_f64().unwrap() >= 0.0);
}

#[test]
fn generate_is_deterministic_for_a_seed() {
    let (model, img) = (model_dir(), image("wide200x40.png"));
    let sampled = |seed: &str| {
        let j = json(&ok(&generate_args(
            &model,
            &img,
            &[
                "--json",
                "--temperature",
                "1.0",
                "--top-p",
                "0.9",
                "--seed",
                seed,
            ],
        )));
        (j["text"].clone(), j["token_ids"].clone())
    };
    assert_eq!(sampled("11"), sampled("11"));
    let greedy_a = ok(&generate_args(&model, &img, &[]));
    let greedy_b = ok(&generate_args(&model, &img, &["--seed", "99"]));
    assert_eq!(greedy_a, greedy_b, "the seed does not matter when greedy");
}

#[test]
fn generate_with_several_images_and_tags() {
    let (model, a, b) = (model_dir(), image("square50.png"), image("tall30x70.png"));
    let out = ok(&[
        "generate",
        "--model",
        &model,
        "--image",
        &a,
        &b,
        "--prompt",
        "<image> then <image>: compare.",
        "--max-new-tokens",
        "4",
        "--json",
    ]);
    assert!(u64s(&json(&out)["token_ids"]).len() <= 4);
}

#[test]
fn score_reports_consistent_logprobs() {
    let (model, img) = (model_dir(), image("square50.png"));
    for aspect in [None, Some("dynamic"), Some("resize")] {
        let mut args = vec![
            "score",
            "--model",
            &model,
            "--image",
            &img,
            "--prompt",
            "What is shown?",
            "--response",
            "A small square.",
        ];
        if let Some(a) = aspect {
            args.extend(["--image-aspect-ratio", a]);
        }
        let j = json(&ok(&args));
        let ids = u64s(&j["token_ids"]);
        let lps: Vec<f64> = j["logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!(!ids.is_empty());
        assert_eq!(ids.len(), lps.len(), "{aspect:?}");
        assert!(lps.iter().all(|&l| l <= 0.0 && l.is_finite()), "{lps:?}");
        let sum = j["sum_logprob"].as_f64().unwrap();
        let want: f64 = lps.iter().sum();
        assert!(
            (sum - want).abs() <= 1e-4 * want.abs().max(1.0),
            "{sum} vs {want}"
        );
    }
}

#[test]
fn help_states_which_vila_path_each_command_follows() {
    let g = ok(&["generate", "--help"]);
    assert!(g.contains("inference path"), "{g}");
    assert!(g.contains("several images are each resized to 448"), "{g}");
    let s = ok(&["score", "--help"]);
    assert!(s.contains("training path"), "{s}");
    assert!(s.contains("every image is tiled"), "{s}");
    for help in [&g, &s] {
        assert!(help.contains("--adapter"), "{help}");
        assert!(
            help.contains("merged into the LLM's weights at load"),
            "{help}"
        );
        assert!(help.contains("merge_and_unload"), "{help}");
    }
    let top = ok(&["--help"]);
    assert!(top.contains("generate") && top.contains("score"), "{top}");
}

#[test]
fn missing_model_dir_is_named() {
    let img = image("square50.png");
    let missing = repo()
        .join("fixtures/golden/no-such-model")
        .display()
        .to_string();
    let err = fails(&generate_args(&missing, &img, &[]));
    assert!(err.contains(&missing) && err.contains("--model"), "{err}");
    let err = fails(&[
        "score",
        "--model",
        &missing,
        "--image",
        &img,
        "--prompt",
        "p",
        "--response",
        "r",
    ]);
    assert!(err.contains(&missing), "{err}");
}

#[test]
fn missing_image_file_is_named() {
    let model = model_dir();
    let missing = image("no-such-image.png");
    let err = fails(&generate_args(&model, &missing, &[]));
    assert!(err.contains(&missing) && err.contains("--image"), "{err}");
    // A file that is not an image is named too.
    let not_image = repo()
        .join("crates/nvila-model/tests/fixtures/processor/gen.py")
        .display()
        .to_string();
    let err = fails(&generate_args(&model, &not_image, &[]));
    assert!(err.contains(&not_image), "{err}");
}

#[test]
fn bad_device_and_unsupported_options_are_rejected() {
    let (model, img) = (model_dir(), image("square50.png"));
    let err = fails(&generate_args(&model, &img, &["--device", "tpu"]));
    assert!(err.contains("--device") && err.contains("tpu"), "{err}");
    #[cfg(not(feature = "cuda"))]
    {
        let err = fails(&generate_args(&model, &img, &["--device", "cuda:0"]));
        assert!(
            err.contains("--device") && err.contains("`cuda` feature"),
            "{err}"
        );
    }
    let err = fails(&generate_args(&model, &img, &["--dtype", "f16"]));
    assert!(err.contains("--dtype"), "{err}");
    let missing = repo()
        .join("fixtures/golden/no-such-adapter")
        .display()
        .to_string();
    let err = fails(&generate_args(&model, &img, &["--adapter", &missing]));
    assert!(
        err.contains("--adapter") && err.contains(&missing) && err.contains("not a directory"),
        "{err}"
    );
    let err = fails(&generate_args(&model, &img, &["--top-p", "2"]));
    assert!(err.contains("top_p"), "{err}");
}

#[test]
fn more_image_tags_than_images_is_an_error() {
    let (model, img) = (model_dir(), image("square50.png"));
    let err = fails(&[
        "generate",
        "--model",
        &model,
        "--image",
        &img,
        "--prompt",
        "<image> and <image>?",
    ]);
    assert!(err.contains("<image>") && err.contains("2"), "{err}");
    let err = fails(&[
        "score",
        "--model",
        &model,
        "--image",
        &img,
        "--prompt",
        "<image> and <image>?",
        "--response",
        "r",
    ]);
    assert!(err.contains("<image>"), "{err}");
}
