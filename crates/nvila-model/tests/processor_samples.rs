//! Generation prompts against the Python re-implementation of `generate_content`
//! (`tests/fixtures/processor/gen.py`), and the processor's handling of bad input.

use std::path::{Path, PathBuf};

use nvila_model::ModelError;
use nvila_model::processor::{
    ImageAspectRatio, PillowVersion, Processor, ProcessorConfig, Role, SystemPrompt, Turn,
    decode_image, expanded_length, load_image,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor")
}

fn llm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/tiny-nvila/llm")
}

fn config(mode: ImageAspectRatio) -> ProcessorConfig {
    ProcessorConfig {
        image_size: 56,
        min_tiles: 1,
        max_tiles: 12,
        image_aspect_ratio: mode,
        model_max_length: None,
        pillow: PillowVersion::Pillow13,
    }
}

fn processor() -> Processor {
    Processor::load(&llm_dir(), config(ImageAspectRatio::Dynamic)).expect("processor")
}

fn image(name: &str) -> image::RgbImage {
    load_image(&fixtures().join("images").join(name)).expect("image")
}

#[test]
fn generation_prompts_match_python() {
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("golden.json")).expect("golden"),
    )
    .expect("json");
    for case in g["generation"].as_array().expect("generation") {
        let name = case["name"].as_str().expect("name");
        // The Python prompt is a list of parts, `None` standing for an image; here a tag.
        let prompt: String = case["prompt_parts"]
            .as_array()
            .expect("parts")
            .iter()
            .map(|p| p.as_str().unwrap_or("<image>").to_owned())
            .collect();
        let images: Vec<_> = case["images"]
            .as_array()
            .expect("images")
            .iter()
            .map(|p| image(p.as_str().expect("p")))
            .collect();
        let mode = if case["mode"] == "resize" {
            ImageAspectRatio::Resize
        } else {
            ImageAspectRatio::Dynamic
        };
        let p = Processor::load(&llm_dir(), config(mode)).expect("processor");
        let out = p.process_generation(&prompt, &images).expect(name);
        assert_eq!(
            out.text,
            case["text"].as_str().expect("text"),
            "{name}: text"
        );
        let ids: Vec<u32> = case["input_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect();
        assert_eq!(out.input_ids, ids, "{name}: ids");
        let tiles: Vec<usize> = case["tiles_per_image"]
            .as_array()
            .expect("t")
            .iter()
            .map(|x| x.as_u64().expect("t") as usize)
            .collect();
        assert_eq!(out.n_tiles_per_image, tiles, "{name}: tiles");
        assert_eq!(out.pixel_values.n_tiles, tiles.iter().sum::<usize>());
    }
}

#[test]
fn generation_prompt_without_tags_puts_images_first() {
    let p = processor();
    let a = p
        .process_generation("Describe.", &[image("square50.png")])
        .expect("a");
    let b = p
        .process_generation("<image>Describe.", &[image("square50.png")])
        .expect("b");
    assert_eq!(a.input_ids, b.input_ids);
    assert!(
        a.text
            .contains("<|im_start|>user\n<image>\nDescribe.<|im_end|>\n<|im_start|>assistant\n")
    );
}

#[test]
fn undecodable_image_is_an_error() {
    let err = decode_image(b"definitely not a png", "bytes").expect_err("must fail");
    assert!(matches!(err, ModelError::Image { .. }), "{err}");
    let mut png = std::fs::read(fixtures().join("images/square50.png")).expect("png");
    png.truncate(png.len() / 2);
    let err = decode_image(&png, "half.png").expect_err("must fail");
    assert!(err.to_string().contains("half.png"), "{err}");
}

/// A PNG whose header claims `w×h` with no pixel data: enough for the size check.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    // An empty IDAT: decoders read the header up to the first data chunk.
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(b"IDAT");
    out.extend_from_slice(&crc32(b"IDAT").to_be_bytes());
    out
}

#[test]
fn huge_image_is_refused_before_decoding() {
    let err = decode_image(&png_header(20_000, 20_000), "huge.png").expect_err("must fail");
    let msg = err.to_string();
    assert!(
        matches!(err, ModelError::Image { .. }) && msg.contains("20000×20000"),
        "{msg}"
    );
    // A size within the limits gets past the check and fails on the (missing) pixel data.
    let err = decode_image(&png_header(100, 100), "small.png").expect_err("no pixel data");
    assert!(!err.to_string().contains("limit"), "{err}");
}

#[test]
fn one_pixel_image_is_processed_like_pil() {
    // PIL resizes a 1×1 image to a uniform tile; VILA accepts it, so this port does too.
    let p = processor();
    let img = image("one1x1.png");
    let out = p
        .process_generation("What?", std::slice::from_ref(&img))
        .expect("1x1");
    assert_eq!(out.n_tiles_per_image, vec![1]);
    let px = img.get_pixel(0, 0).0;
    let plane = 56 * 56;
    for (c, &v) in px.iter().enumerate() {
        let expected = ((f64::from(v) * (1.0 / 255.0)) as f32 - 0.5) / 0.5;
        assert!(
            out.pixel_values.data[c * plane..(c + 1) * plane]
                .iter()
                .all(|&v| v == expected)
        );
    }
}

#[test]
fn more_image_tags_than_images_is_an_error() {
    let p = processor();
    let err = p
        .process_generation("<image><image>Compare.", &[image("square50.png")])
        .expect_err("tags");
    assert!(matches!(err, ModelError::Input(_)), "{err}");
    let err = p
        .process_generation("<image>Compare.", &[])
        .expect_err("tags");
    assert!(err.to_string().contains("1 `<image>` tags"), "{err}");
    let turns = [
        Turn::new(Role::Human, "<image>\n<image>\nWhat?"),
        Turn::new(Role::Gpt, "A car."),
    ];
    let err = p
        .process_training(&turns, &[image("square50.png")], &SystemPrompt::Default)
        .expect_err("tags");
    assert!(
        err.to_string()
            .contains("2 `<image>` tags but only 1 images"),
        "{err}"
    );
}

#[test]
fn prompt_longer_than_model_max_length_is_an_error() {
    let p = Processor::load(
        &llm_dir(),
        ProcessorConfig {
            model_max_length: Some(20),
            ..config(ImageAspectRatio::Dynamic)
        },
    )
    .expect("processor");
    let err = p
        .process_generation("Describe the scene in detail.", &[])
        .expect_err("too long");
    assert!(
        err.to_string().contains("longer than model_max_length 20"),
        "{err}"
    );
}

#[test]
fn first_turn_must_be_human_and_system_conflicts() {
    let p = processor();
    let err = p
        .process_training(&[Turn::new(Role::Gpt, "hi")], &[], &SystemPrompt::Default)
        .expect_err("gpt first");
    assert!(err.to_string().contains("human"), "{err}");
    let turns = [
        Turn::new(Role::Human, "q"),
        Turn::new(Role::System, "s"),
        Turn::new(Role::Gpt, "a"),
    ];
    let err = p
        .process_training(&turns, &[], &SystemPrompt::Empty)
        .expect_err("system + empty");
    assert!(err.to_string().contains("no_system_prompt"), "{err}");
}

#[test]
fn bad_config_is_refused() {
    for (min, max) in [(0, 12), (5, 4), (1, 1000)] {
        let c = ProcessorConfig {
            min_tiles: min,
            max_tiles: max,
            ..config(ImageAspectRatio::Dynamic)
        };
        let err = Processor::load(&llm_dir(), c).expect_err("bad tiles");
        assert!(matches!(err, ModelError::Config { .. }), "{err}");
    }
}

#[test]
fn expanded_length_counts_embeddings_per_image() {
    let p = processor();
    let out = p
        .process_generation("What?", &[image("tie160x80.png")])
        .expect("gen");
    let n = out.n_tiles_per_image[0];
    let id = p.tokenizer().image_token_id();
    assert_eq!(
        expanded_length(&out.input_ids, id, 122),
        out.input_ids.len() + n * 121
    );
}
