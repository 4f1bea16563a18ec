//! `NvilaModel` on bad input and broken checkpoints: each case is a typed error with a message
//! that names the problem. Broken checkpoints are copies of `fixtures/golden/tiny-nvila/` in a
//! temporary folder, edited.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use nvila_model::processor::{ImageAspectRatio, PillowVersion, ProcessorConfig, load_image};
use nvila_model::{ModelError, NvilaModel};

fn checkpoint() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/tiny-nvila")
}

fn image(name: &str) -> image::RgbImage {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/reference");
    load_image(&dir.join(name)).expect("png")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn copy_checkpoint() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&checkpoint(), dir.path());
    dir
}

fn load(root: &Path) -> Result<NvilaModel, ModelError> {
    NvilaModel::from_checkpoint(root, &Device::flex(), None)
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{}: no {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).expect("write");
}

#[test]
fn bad_prompts_are_input_errors() {
    let model = load(&checkpoint()).expect("load");
    let img = image("img_square50.png");

    // More `<image>` tags than images, on both paths.
    let err = model
        .score(
            "<image>\n<image>\nWhat?",
            std::slice::from_ref(&img),
            "Yes.",
            None,
        )
        .unwrap_err();
    assert!(
        matches!(err, ModelError::Input(_)) && err.to_string().contains("2 `<image>` tags"),
        "{err}"
    );
    let err = model
        .prepare_generation("<image> and <image>?", std::slice::from_ref(&img))
        .unwrap_err();
    assert!(
        matches!(err, ModelError::Input(_)) && err.to_string().contains("`<image>` tags"),
        "{err}"
    );

    // `<image>` ids and tiles that do not pair up.
    let image_id = model.processor.tokenizer().image_token_id();
    let err = model
        .embed_inputs(&[1, image_id, 2], None, None)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("1 `<image>` tokens but 0 image tiles"),
        "{err}"
    );
    let err = model.embed_inputs(&[1, 2], None, Some(&[1])).unwrap_err();
    assert!(
        err.to_string().contains("1 labels for 2 input ids"),
        "{err}"
    );
}

#[test]
fn prompts_longer_than_model_max_length_are_refused() {
    let config = ProcessorConfig {
        image_size: 56,
        min_tiles: 1,
        max_tiles: 12,
        image_aspect_ratio: ImageAspectRatio::Dynamic,
        model_max_length: Some(64),
        pillow: PillowVersion::Pillow12,
    };
    let model =
        NvilaModel::from_checkpoint_with(&checkpoint(), &Device::flex(), None, Some(config))
            .expect("load");
    assert_eq!(model.processor.model_max_length(), 64);
    let long = "Describe the pedestrian near the traffic light. ".repeat(20);

    let err = model.prepare_generation(&long, &[]).unwrap_err();
    assert!(
        matches!(err, ModelError::Input(_)) && err.to_string().contains("model_max_length 64"),
        "{err}"
    );
    // Training path: VILA truncates (before and after expansion); the response is cut away, so
    // nothing is left to score.
    let err = model.score(&long, &[], "Yes.", None).unwrap_err();
    assert!(
        matches!(err, ModelError::Input(_))
            && err.to_string().contains("no supervised tokens")
            && err.to_string().contains("model_max_length 64"),
        "{err}"
    );
    // After expansion: 3 tiles x 6 positions push a short conversation over 64; the spliced
    // sequence is truncated to exactly 64 on the training path.
    let wide = image("img_wide120x60.png");
    let turns = [
        nvila_model::processor::Turn::new(nvila_model::processor::Role::Human, "Describe."),
        nvila_model::processor::Turn::new(
            nvila_model::processor::Role::Gpt,
            "The pedestrian is crossing the road near the traffic light.",
        ),
    ];
    let sample = model
        .processor
        .process_training(&turns, std::slice::from_ref(&wide), &Default::default())
        .expect("sample");
    assert!(sample.input_ids.len() <= 64, "{}", sample.input_ids.len());
    let spliced = model
        .embed_inputs(
            &sample.input_ids,
            Some(&sample.pixel_values),
            Some(&sample.labels),
        )
        .expect("splice");
    let expanded = sample.input_ids.len() + 3 * (4 + 1 - 1);
    assert!(expanded > 64, "{expanded}");
    assert_eq!(spliced.embeds.dims()[1], 64);
    assert_eq!(spliced.labels.map(|l| l.len()), Some(64));
}

#[test]
fn broken_checkpoints_are_reported() {
    // Missing subfolder.
    let dir = copy_checkpoint();
    std::fs::remove_dir_all(dir.path().join("mm_projector")).expect("rm");
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(err, ModelError::Missing { .. }) && err.to_string().contains("mm_projector"),
        "{err}"
    );

    // Tokenizer without `<image>`.
    let dir = copy_checkpoint();
    let llm = dir.path().join("llm");
    edit(&llm.join("tokenizer.json"), "\"<image>\"", "\"<picture>\"");
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(err, ModelError::Tokenizer { .. })
            && err.to_string().contains("no `<image>` token")
            && err.to_string().contains("tokenizer.json"),
        "{err}"
    );

    // A tokenizer larger than the LLM's vocabulary.
    let dir = copy_checkpoint();
    let llm = dir.path().join("llm");
    edit(
        &llm.join("tokenizer.json"),
        r#""content": "<vila/video>","#,
        r#""content": "<vila/video>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}, {"id": 512, "content": "<extra>","#,
    );
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(err, ModelError::Config { .. })
            && err.to_string().contains("513 tokens")
            && err.to_string().contains("vocab_size is 512"),
        "{err}"
    );

    // A processor override whose tile size is not the tower's.
    let config = ProcessorConfig {
        image_size: 448,
        ..ProcessorConfig::nvila_lite()
    };
    let err = NvilaModel::from_checkpoint_with(&checkpoint(), &Device::flex(), None, Some(config))
        .unwrap_err();
    assert!(err.to_string().contains("image_size 448"), "{err}");

    // The top-level config's tiling settings reach the processor.
    let dir = copy_checkpoint();
    edit(
        &dir.path().join("config.json"),
        r#""max_tiles": 12"#,
        r#""max_tiles": 1"#,
    );
    let model = load(dir.path()).expect("load");
    assert_eq!(model.processor.config().max_tiles, 1);
    let input = model
        .processor
        .process_generation("Describe.", &[image("img_wide120x60.png")])
        .expect("input");
    assert_eq!(input.pixel_values.n_tiles, 1);
}
