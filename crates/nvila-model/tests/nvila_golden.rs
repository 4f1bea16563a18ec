//! `NvilaModel` end to end against VILA's path re-implemented in PyTorch on the tiny checkpoint
//! `fixtures/golden/tiny-nvila/` (top-level `config.json` + `llm/`, `vision_tower/`,
//! `mm_projector/`).
//!
//! References: `fixtures/golden/reference/` (`reference.json`, `reference.safetensors`, input
//! PNGs), written by `fixtures/golden/make_golden.py` (regenerate: `python3
//! fixtures/golden/make_golden.py` from the repository root). The images there give the same
//! tiles under Pillow 12 and 13 (the generator asserts it), so the checkpoint's default
//! processor (`PillowVersion::Pillow12`) is used unchanged.
//!
//! Tolerances: features, projector output, embeddings and logits `max |a - b| / max |b| <= 1e-4`;
//! log-probs `<= 1e-3` absolute; loss `<= 1e-4` relative; ids, labels, lengths and greedy tokens
//! identical.

use std::path::PathBuf;

use burn::tensor::{DType, Device, Tensor, TensorData};
use nvila_model::NvilaModel;
use nvila_model::processor::{ImageAspectRatio, PixelValues, Role, SystemPrompt, Turn, load_image};
use safetensors::SafeTensors;
use serde_json::Value;

const REL_TOL: f32 = 1e-4;
const LOGPROB_ABS_TOL: f32 = 1e-3;

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden")
}

fn reference_dir() -> PathBuf {
    golden().join("reference")
}

fn model() -> NvilaModel {
    NvilaModel::from_checkpoint(&golden().join("tiny-nvila"), &Device::flex(), None)
        .expect("tiny checkpoint loads")
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(reference_dir().join("reference.json")).expect("json");
    let v: Value = serde_json::from_str(&text).expect("parse");
    v["cases"].as_array().expect("cases").clone()
}

struct Tensors(Vec<u8>);

impl Tensors {
    fn load() -> Tensors {
        Tensors(std::fs::read(reference_dir().join("reference.safetensors")).expect("safetensors"))
    }
    fn raw(&self, name: &str) -> (Vec<usize>, Vec<u8>) {
        let st = SafeTensors::deserialize(&self.0).expect("deserialize");
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        (t.shape().to_vec(), t.data().to_vec())
    }
    fn f32s(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let (shape, data) = self.raw(name);
        let v = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (shape, v)
    }
}

fn to_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.cast(DType::F32)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32")
}

fn assert_rel(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let err = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("{what}: relative error {:.2e}", err / scale);
    assert!(
        err / scale <= tol,
        "{what}: max |diff| {err} / max |ref| {scale} = {} > {tol}",
        err / scale
    );
}

fn images(case: &Value) -> Vec<image::RgbImage> {
    case["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|p| load_image(&reference_dir().join(p.as_str().expect("name"))).expect("png"))
        .collect()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("u64") as u32)
        .collect()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("i64"))
        .collect()
}

/// SigLIP's normalisation of the reference's uint8 tiles (`(x / 255 - 0.5) / 0.5` in f32 after
/// an f64 rescale, as transformers' slow processor).
fn normalise_u8(data: &[u8]) -> Vec<f32> {
    data.iter()
        .map(|&x| ((f64::from(x) * (1.0 / 255.0)) as f32 - 0.5) / 0.5)
        .collect()
}

#[test]
fn training_path_matches_vila() {
    let model = model();
    let refs = Tensors::load();
    let processor = &model.processor;
    let training: Vec<Value> = cases()
        .into_iter()
        .filter(|c| c["path"] == "training")
        .collect();
    assert_eq!(training.len(), 3, "single_image, two_images, text_only");
    for case in &training {
        let name = case["name"].as_str().expect("name");
        let prompt = case["prompt"].as_str().expect("prompt");
        let response = case["response"].as_str().expect("response");
        let imgs = images(case);

        // Processor: ids, labels, tiles.
        let turns = [
            Turn::new(Role::Human, prompt),
            Turn::new(Role::Gpt, response),
        ];
        let sample = processor
            .process_training(&turns, &imgs, &SystemPrompt::Default)
            .expect("sample");
        assert_eq!(
            sample.input_ids,
            u32s(&case["input_ids"]),
            "{name}: input ids"
        );
        assert_eq!(sample.labels, i64s(&case["labels"]), "{name}: labels");
        let n_tiles = case["n_tiles"].as_u64().expect("n") as usize;
        assert_eq!(sample.pixel_values.n_tiles, n_tiles, "{name}: tiles");
        if n_tiles > 0 {
            let (shape, tiles) = refs.raw(&format!("{name}.tiles_u8"));
            assert_eq!(
                shape,
                sample.pixel_values.shape().to_vec(),
                "{name}: tile shape"
            );
            assert_rel(
                &format!("{name}: pixel values"),
                &sample.pixel_values.data,
                &normalise_u8(&tiles),
                1e-6,
            );
            // Vision features of tile 0 and projector output of every tile.
            if name == "single_image" {
                let side = sample.pixel_values.image_size;
                let tile0 = PixelValues {
                    data: sample.pixel_values.data[..3 * side * side].to_vec(),
                    n_tiles: 1,
                    image_size: side,
                };
                let t: Tensor<4> = Tensor::from_data(
                    TensorData::new(tile0.data.clone(), tile0.shape()),
                    (model.device(), DType::F32),
                );
                let features = model.vision_tower.forward(t).expect("features");
                let (_, want) = refs.f32s("single_image.features_tile0");
                assert_rel("features tile 0", &to_f32(features), &want, REL_TOL);
            }
            let projected = model.encode_images(&sample.pixel_values).expect("encode");
            let (shape, want) = refs.f32s(&format!("{name}.projected"));
            assert_eq!(projected.dims().to_vec(), shape, "{name}: projected shape");
            assert_rel(
                &format!("{name}: projected"),
                &to_f32(projected),
                &want,
                REL_TOL,
            );
        }

        // Splicing.
        let pixels = (n_tiles > 0).then_some(&sample.pixel_values);
        let spliced = model
            .embed_inputs(&sample.input_ids, pixels, Some(&sample.labels))
            .expect("splice");
        let spliced_len = case["spliced_len"].as_u64().expect("len") as usize;
        assert_eq!(
            spliced.embeds.dims(),
            [1, spliced_len, 64],
            "{name}: spliced"
        );
        assert_eq!(
            spliced.labels.as_deref(),
            Some(i64s(&case["expanded_labels"]).as_slice()),
            "{name}: expanded labels"
        );
        if name == "single_image" {
            let (_, want) = refs.f32s("single_image.embeds");
            assert_rel(
                "spliced embeds",
                &to_f32(spliced.embeds.clone()),
                &want,
                REL_TOL,
            );
        }

        // Logits (all positions for single_image, the tail otherwise).
        let hidden = model
            .llm
            .forward(spliced.embeds, None, None)
            .expect("forward");
        let logits = model.llm.logits(hidden);
        if name == "single_image" {
            let (_, want) = refs.f32s("single_image.logits");
            assert_rel("logits", &to_f32(logits), &want, REL_TOL);
        } else {
            let (shape, want) = refs.f32s(&format!("{name}.logits_tail"));
            let tail = logits.narrow(1, spliced_len - shape[0], shape[0]);
            assert_rel(
                &format!("{name}: logits tail"),
                &to_f32(tail),
                &want,
                REL_TOL,
            );
        }

        // score() and loss().
        let score = model.score(prompt, &imgs, response, None).expect("score");
        assert_eq!(
            score.token_ids,
            u32s(&case["supervised_ids"]),
            "{name}: supervised"
        );
        let want: Vec<f32> = case["logprobs"]
            .as_array()
            .expect("lp")
            .iter()
            .map(|v| v.as_f64().expect("f") as f32)
            .collect();
        assert_eq!(score.logprobs.len(), want.len());
        for (k, (a, b)) in score.logprobs.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= LOGPROB_ABS_TOL,
                "{name}: logprob {k}: {a} vs {b}"
            );
        }
        let want_sum = case["sum_logprob"].as_f64().expect("sum");
        assert!(
            (score.sum_logprob - want_sum).abs() <= 1e-3 * want.len() as f64,
            "{name}: sum {} vs {want_sum}",
            score.sum_logprob
        );
        let loss = model.loss(&sample).expect("loss");
        let want_loss = case["loss"].as_f64().expect("loss") as f32;
        assert!(
            ((loss - want_loss) / want_loss).abs() <= REL_TOL,
            "{name}: loss {loss} vs {want_loss}"
        );
    }
}

#[test]
fn inference_path_and_greedy_tokens_match_vila() {
    let model = model();
    let refs = Tensors::load();
    let device = model.device().clone();
    let stop = model.processor.tokenizer().stop_token_ids();
    let generation: Vec<Value> = cases()
        .into_iter()
        .filter(|c| c["path"] == "generation")
        .collect();
    assert_eq!(generation.len(), 2, "gen_single, gen_two");
    for case in &generation {
        let name = case["name"].as_str().expect("name");
        let prompt = case["prompt"].as_str().expect("prompt");
        let imgs = images(case);
        assert_eq!(stop, u32s(&case["stop_ids"]), "stop ids");

        let input = model
            .processor
            .process_generation(prompt, &imgs)
            .expect("generation input");
        assert_eq!(input.input_ids, u32s(&case["input_ids"]), "{name}: ids");
        assert_eq!(
            input.text,
            case["text"].as_str().expect("text"),
            "{name}: text"
        );
        assert!(input.text.ends_with("<|im_start|>assistant\n"));
        assert_eq!(
            input.pixel_values.n_tiles,
            case["n_tiles"].as_u64().expect("n") as usize,
            "{name}: tiles"
        );

        let embeds = model.prepare_generation(prompt, &imgs).expect("prepare");
        let spliced_len = case["spliced_len"].as_u64().expect("len") as usize;
        assert_eq!(embeds.dims(), [1, spliced_len, 64], "{name}: spliced");
        let (_, want) = refs.f32s(&format!("{name}.embeds"));
        assert_rel(
            &format!("{name}: embeds"),
            &to_f32(embeds.clone()),
            &want,
            REL_TOL,
        );

        // A plain greedy loop over the KV cache (HF `generate(do_sample=False)`).
        let mut cache = model.llm.new_cache();
        let mut hidden = model
            .llm
            .forward(embeds, None, Some(&mut cache))
            .expect("prefill");
        let mut tokens = Vec::new();
        for _ in 0..8 {
            let s = hidden.dims()[1];
            let logits = model
                .llm
                .logits(hidden.narrow(1, s - 1, 1))
                .cast(DType::F32);
            let logits = logits.narrow(2, 0, model.vocab_len());
            let id = logits
                .argmax(2)
                .into_data()
                .iter::<i64>()
                .next()
                .expect("argmax");
            tokens.push(id);
            if stop.contains(&(id as u32)) {
                break;
            }
            let next = model
                .llm
                .embed(Tensor::from_data(
                    TensorData::new(vec![id], [1, 1]),
                    &device,
                ))
                .expect("embed");
            hidden = model
                .llm
                .forward(next, None, Some(&mut cache))
                .expect("step");
        }
        assert_eq!(
            tokens,
            i64s(&case["greedy_tokens"]),
            "{name}: greedy tokens"
        );
    }
}

#[test]
fn checkpoint_config_drives_the_processor() {
    let model = model();
    let c = model.processor.config();
    assert_eq!((c.image_size, c.min_tiles, c.max_tiles), (56, 1, 12));
    assert_eq!(c.image_aspect_ratio, ImageAspectRatio::Dynamic);
    assert_eq!(model.config.mm_vision_select_layer, -2);
    assert_eq!(model.vision_tower.n_layers_run(), 2);
    assert_eq!(model.image_end_ids, vec![198]);
    assert_eq!(model.vocab_len(), 512);
    // The `resize` override gives one tile (one `<image>` id) per image on the training path.
    let case = &cases()[1];
    let imgs = images(case);
    let dynamic = model
        .score("Compare.", &imgs, "Wider.", None)
        .expect("dynamic");
    let resize = model
        .score("Compare.", &imgs, "Wider.", Some(ImageAspectRatio::Resize))
        .expect("resize");
    assert_eq!(dynamic.token_ids, resize.token_ids);
    assert_ne!(dynamic.logprobs, resize.logprobs);
    let json = serde_json::to_value(&resize).expect("serialize");
    assert!(json["sum_logprob"].is_number() && json["token_ids"].is_array());
}

#[test]
fn bf16_model_splices_in_bf16_and_tracks_f32() {
    let model = NvilaModel::from_checkpoint(
        &golden().join("tiny-nvila"),
        &Device::flex(),
        Some(DType::BF16),
    )
    .expect("bf16 load");
    assert_eq!(model.llm_dtype(), DType::BF16);
    let case = &cases()[0];
    let imgs = images(case);
    let embeds = model
        .prepare_generation("Describe the scene.", &imgs)
        .expect("prepare");
    assert_eq!(embeds.dtype(), DType::BF16);
    let score = model
        .score(
            case["prompt"].as_str().expect("prompt"),
            &imgs,
            case["response"].as_str().expect("response"),
            None,
        )
        .expect("score");
    assert_eq!(score.token_ids, u32s(&case["supervised_ids"]));
    // bf16 keeps 8 mantissa bits; the log-probs (f32 log-softmax of bf16 logits) stay close.
    let want = case["sum_logprob"].as_f64().expect("sum");
    let rel = ((score.sum_logprob - want) / want).abs();
    eprintln!(
        "bf16 sum log-prob {} vs f32 {want}: relative {rel:e}",
        score.sum_logprob
    );
    assert!(rel <= 5e-2, "bf16 relative error {rel}");
}
