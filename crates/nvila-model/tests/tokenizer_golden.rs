//! The tiny VILA tokenizer (`fixtures/golden/tiny-nvila/llm/`) against transformers
//! (`tests/fixtures/processor/gen.py`), and the loader's errors.

use std::path::{Path, PathBuf};

use nvila_model::ModelError;
use nvila_model::processor::Tokenizer;
use serde_json::Value;

fn llm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/tiny-nvila/llm")
}

fn golden() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor/golden.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("golden.json")).expect("parses")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Copy the tokenizer files into a temp dir, letting `edit` change the two JSON files.
fn edited_copy(edit: impl FnOnce(&mut Value, &mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(llm_dir().join(name)).expect("read"))
            .expect("json")
    };
    let mut tok = read("tokenizer.json");
    let mut cfg = read("tokenizer_config.json");
    edit(&mut tok, &mut cfg);
    std::fs::write(dir.path().join("tokenizer.json"), tok.to_string()).expect("write");
    std::fs::write(dir.path().join("tokenizer_config.json"), cfg.to_string()).expect("write");
    dir
}

#[test]
fn special_ids_by_name() {
    let t = Tokenizer::load(&llm_dir()).expect("load");
    assert_eq!(t.vocab_size(), 512);
    assert_eq!(t.token_to_id("<|endoftext|>"), Some(504));
    assert_eq!(t.token_to_id("<|im_start|>"), Some(505));
    assert_eq!(t.im_end_token_id(), 506);
    assert_eq!(t.token_to_id("[BOS]"), Some(507));
    assert_eq!(t.pad_token_id(), Some(508));
    assert_eq!(t.sentinel_token_id(), 509);
    assert_eq!(t.image_token_id(), 510);
    assert_eq!(t.token_to_id("<vila/video>"), Some(511));
    assert_eq!(t.eos_token_id(), 506);
    assert_eq!(t.stop_token_ids(), vec![506]);
    assert_eq!(t.model_max_length(), Some(4096));
}

#[test]
fn encode_and_decode_match_transformers() {
    let t = Tokenizer::load(&llm_dir()).expect("load");
    let g = golden();
    for case in g["encode"].as_array().expect("encode") {
        let text = case["text"].as_str().expect("text");
        let expected = ids(&case["ids"]);
        assert_eq!(t.encode(text).expect("encode"), expected, "{text:?}");
        assert_eq!(
            t.decode(&expected, false).expect("decode"),
            case["decoded"].as_str().expect("s"),
            "{text:?}"
        );
        assert_eq!(
            t.decode(&expected, true).expect("decode"),
            case["decoded_skip"].as_str().expect("s"),
            "{text:?}"
        );
    }
}

#[test]
fn no_bos_is_added() {
    let t = Tokenizer::load(&llm_dir()).expect("load");
    let ids = t.encode("hello").expect("encode");
    assert_ne!(ids.first().copied(), t.token_to_id("[BOS]"));
}

#[test]
fn missing_image_token_is_a_clear_error() {
    let dir = edited_copy(|tok, _| {
        let added = tok["added_tokens"].as_array_mut().expect("added_tokens");
        added.retain(|t| t["content"] != "<image>");
    });
    let err = Tokenizer::load(dir.path()).expect_err("must fail");
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Tokenizer { .. }), "{msg}");
    assert!(
        msg.contains("tokenizer.json") && msg.contains("<image>"),
        "{msg}"
    );
}

#[test]
fn unknown_or_missing_chat_template_is_refused() {
    let dir = edited_copy(|_, cfg| {
        cfg["chat_template"] = Value::String("{{ messages }}".into());
    });
    let msg = Tokenizer::load(dir.path())
        .expect_err("must fail")
        .to_string();
    assert!(
        msg.contains("tokenizer_config.json") && msg.contains("qwen2"),
        "{msg}"
    );

    let dir = edited_copy(|_, cfg| {
        cfg.as_object_mut().expect("object").remove("chat_template");
    });
    let msg = Tokenizer::load(dir.path())
        .expect_err("must fail")
        .to_string();
    assert!(msg.contains("chat_template"), "{msg}");
}

#[test]
fn missing_sentinel_is_added_like_vila() {
    let dir = edited_copy(|tok, _| {
        let added = tok["added_tokens"].as_array_mut().expect("added_tokens");
        added.retain(|t| t["content"] != "<vila/sentinel>");
    });
    let t = Tokenizer::load(dir.path()).expect("load");
    assert_eq!(
        t.token_to_id("<vila/sentinel>"),
        Some(t.sentinel_token_id())
    );
    assert_eq!(t.encode("a<vila/sentinel>b").expect("encode").len(), 3);
}

#[test]
fn missing_files_name_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let msg = Tokenizer::load(dir.path())
        .expect_err("must fail")
        .to_string();
    assert!(msg.contains("tokenizer.json"), "{msg}");
}
