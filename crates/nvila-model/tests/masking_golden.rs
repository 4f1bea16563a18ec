//! Label masking and training samples against the Python re-implementation of VILA's
//! `preprocess_conversation` + `LLaVADataset`/`BaseDataset` media handling, rendered with
//! transformers' own `apply_chat_template` (`tests/fixtures/processor/gen.py`).

use std::path::{Path, PathBuf};

use nvila_model::processor::masking::{IGNORE_INDEX, mask_labels};
use nvila_model::processor::{
    ImageAspectRatio, PillowVersion, Processor, ProcessorConfig, SystemPrompt, Turn, load_image,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor")
}

fn llm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/tiny-nvila/llm")
}

fn golden() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("golden.json")).expect("golden"))
        .expect("json")
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("u") as u32)
        .collect()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("i"))
        .collect()
}

fn processor(mode: &str) -> Processor {
    let config = ProcessorConfig {
        image_size: 56,
        min_tiles: 1,
        max_tiles: 12,
        image_aspect_ratio: if mode == "resize" {
            ImageAspectRatio::Resize
        } else {
            ImageAspectRatio::Dynamic
        },
        model_max_length: None,
        pillow: PillowVersion::Pillow13,
    };
    Processor::load(&llm_dir(), config).expect("processor")
}

#[test]
fn synthetic_masking_cases_match_python() {
    let g = golden();
    for case in g["masking"].as_array().expect("masking") {
        let note = case["note"].as_str().expect("note");
        let m = mask_labels(
            &u32s(&case["inputs"]),
            &u32s(&case["template"]),
            case["sentinel"].as_u64().expect("s") as u32,
        );
        assert_eq!(m.labels, i64s(&case["labels"]), "{note}");
        assert_eq!(m.retried, case["retried"].as_bool().expect("b"), "{note}");
        assert_eq!(m.failed, case["failed"].as_bool().expect("b"), "{note}");
    }
}

#[test]
fn training_samples_match_python() {
    let g = golden();
    let mut n = 0;
    for case in g["training"].as_array().expect("training") {
        let name = case["name"].as_str().expect("name");
        let turns: Vec<Turn> = serde_json::from_value(case["conversation"].clone()).expect("turns");
        let images: Vec<_> = case["images"]
            .as_array()
            .expect("images")
            .iter()
            .map(|p| {
                load_image(&fixtures().join("images").join(p.as_str().expect("path")))
                    .expect("image")
            })
            .collect();
        let system = match (case["system"].as_str(), case["no_system_prompt"].as_bool()) {
            (Some(s), _) => SystemPrompt::Custom(s.to_owned()),
            (None, Some(true)) => SystemPrompt::Empty,
            _ => SystemPrompt::Default,
        };
        let p = processor(case["mode"].as_str().expect("mode"));
        let s = p.process_training(&turns, &images, &system).expect(name);
        assert_eq!(s.text, case["text"].as_str().expect("text"), "{name}: text");
        assert_eq!(s.input_ids, u32s(&case["input_ids"]), "{name}: ids");
        assert_eq!(s.labels, i64s(&case["labels"]), "{name}: labels");
        let tiles: Vec<usize> = u32s(&case["tiles_per_image"])
            .into_iter()
            .map(|t| t as usize)
            .collect();
        assert_eq!(s.n_tiles_per_image, tiles, "{name}: tiles");
        let total: usize = tiles.iter().sum();
        assert_eq!(s.pixel_values.shape(), [total, 3, 56, 56], "{name}: shape");
        assert_eq!(s.pixel_values.data.len(), total * 3 * 56 * 56);
        let image_ids = s
            .input_ids
            .iter()
            .filter(|&&i| i == p.tokenizer().image_token_id())
            .count();
        assert_eq!(image_ids, total, "{name}: one <image> id per tile");
        n += 1;
    }
    assert!(n >= 10);
}

#[test]
fn newline_quirk_is_reproduced() {
    // nvila.md §3.3: a bare "\n" inside the answer is matched by the template (not trained),
    // and the "\n" after the final <|im_end|> is trained instead.
    let g = golden();
    let case = g["training"]
        .as_array()
        .expect("training")
        .iter()
        .find(|c| c["name"] == "answer_with_newlines")
        .expect("case");
    let ids = u32s(&case["input_ids"]);
    let labels = i64s(&case["labels"]);
    assert_eq!(*ids.last().expect("id"), 198);
    assert_eq!(*labels.last().expect("label"), 198);
    let inside = ids.len() - 7; // the bare "\n" of "\n\nDone."
    assert_eq!((ids[inside], labels[inside]), (198, IGNORE_INDEX));
}

#[test]
fn truncation_drops_cut_tiles_like_the_collator() {
    let base = processor("dynamic");
    let turns = vec![
        Turn::new(
            nvila_model::processor::Role::Human,
            "<image>\nWhat is the pedestrian doing?",
        ),
        Turn::new(
            nvila_model::processor::Role::Gpt,
            "The pedestrian is crossing the road.",
        ),
    ];
    let img = load_image(&fixtures().join("images/tie160x80.png")).expect("image");
    let full = base
        .process_training(&turns, std::slice::from_ref(&img), &SystemPrompt::Default)
        .expect("full");
    assert_eq!(full.n_tiles_per_image, vec![9]);
    // The tiles start at id 27 ("<image>" "\n" pairs); keep 4 of them.
    let max_len = 27 + 2 * 4 - 1;
    let config = ProcessorConfig {
        model_max_length: Some(max_len),
        ..base.config().clone()
    };
    let p = Processor::load(&llm_dir(), config).expect("processor");
    let s = p
        .process_training(&turns, &[img], &SystemPrompt::Default)
        .expect("truncated");
    assert_eq!(s.input_ids, full.input_ids[..max_len].to_vec());
    assert_eq!(s.labels, full.labels[..max_len].to_vec());
    assert_eq!(s.n_tiles_per_image, vec![4]);
    assert_eq!(s.pixel_values.n_tiles, 4);
    assert_eq!(
        s.pixel_values.data[..],
        full.pixel_values.data[..4 * 3 * 56 * 56]
    );
}
