//! Prepared samples against nvila-model: the same ids, labels and tiles as its processor for
//! the same record, and the truncation after image expansion equal to what the model's
//! `embed_inputs` (VILA's `_embed`) keeps.

mod data_support;

use burn::tensor::Device;
use data_support::{three_datasets, tiny_checkpoint, write_records, write_registry};
use nvila_model::NvilaModel;
use nvila_model::nvila::processor_config_for;
use nvila_model::processor::{IGNORE_INDEX, Role, SystemPrompt, Turn, load_image};
use serde_json::{Value, json};
use trainer::data::{BatchGeometry, OpenOptions, PrepareOptions, SamplePreparer, TrainingSet};

fn turns_of(record: &Value) -> Vec<Turn> {
    record["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let role = match m["from"].as_str().unwrap() {
                "human" => Role::Human,
                "gpt" => Role::Gpt,
                _ => Role::System,
            };
            Turn::new(role, m["value"].as_str().unwrap())
        })
        .collect()
}

#[test]
fn prepared_samples_equal_the_processor_output() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = three_datasets(tmp.path());
    let set =
        TrainingSet::open(&reg, "a+b", &OpenOptions::new(BatchGeometry::single(), 42)).unwrap();
    let preparer =
        SamplePreparer::from_checkpoint(&tiny_checkpoint(), &PrepareOptions::default()).unwrap();
    // Tiny checkpoint: 56-px tiles of 16 patches, 3x3 merge -> 4 tokens, + "\n" -> 5.
    assert_eq!(preparer.embeddings_per_image(), 5);
    assert_eq!(
        preparer.pad_token_id(),
        preparer
            .processor()
            .tokenizer()
            .token_to_id("[PAD]")
            .unwrap()
    );

    for index in 0..set.len() {
        let sample = set.sample(index).unwrap();
        let prepared = preparer.prepare(&sample).unwrap();

        // The record read straight from the file, images from disk, nvila-model's processor.
        let file: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(sample.file).unwrap()).unwrap();
        let record = &file[sample.record_index];
        let media = sample.media_dir.unwrap();
        let image = load_image(&media.join(record["image"].as_str().unwrap())).unwrap();
        let want = preparer
            .processor()
            .process_training(&turns_of(record), &[image], &SystemPrompt::Default)
            .unwrap();
        assert_eq!(prepared.input_ids, want.input_ids, "sample {index}");
        assert_eq!(prepared.labels, want.labels, "sample {index}");
        assert_eq!(prepared.pixel_values, want.pixel_values, "sample {index}");
        assert_eq!(prepared.tiles_per_image, want.n_tiles_per_image);
        assert_eq!(
            prepared.num_supervised_tokens,
            want.labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
        );
        assert!(prepared.num_supervised_tokens > 0);
        assert_eq!(prepared.num_loss_tokens, prepared.num_supervised_tokens);
        assert_eq!(prepared.id.as_deref(), record["id"].as_str());
        let (data, shape) = prepared.image(0).unwrap();
        assert_eq!(shape, [prepared.tiles_per_image[0], 3, 56, 56]);
        assert_eq!(data.len(), shape.iter().product::<usize>());
    }
}

#[test]
fn truncation_after_expansion_matches_the_model_embed() {
    let tmp = tempfile::tempdir().unwrap();
    // Two images (support::SIZES): 56x56 (one tile) and 130x60 (2x1 tiles + thumbnail).
    let rec = json!({
        "id": "long",
        "images": ["images/x.jpg", "images/y.jpg"],
        "conversations": [
            {"from": "human", "value": "<image>\n<image>\nWhat differs between the two views?"},
            {"from": "gpt", "value": "The left view shows a car turning while the right view shows a cyclist waiting at the light."}
        ]
    });
    let (data, media) = write_records(tmp.path(), "long", std::slice::from_ref(&rec));
    let reg = tmp.path().join("reg.yaml");
    write_registry(&reg, &[("long", data, media.clone())]);
    let set =
        TrainingSet::open(&reg, "long", &OpenOptions::new(BatchGeometry::single(), 42)).unwrap();
    let sample = set.sample(0).unwrap();
    let images: Vec<_> = ["images/x.jpg", "images/y.jpg"]
        .iter()
        .map(|p| load_image(&media.join(p)).unwrap())
        .collect();

    let base =
        SamplePreparer::from_checkpoint(&tiny_checkpoint(), &PrepareOptions::default()).unwrap();
    let full = base.prepare(&sample).unwrap();
    let image_id = base.processor().tokenizer().image_token_id();
    // Expanded position of the third tile: cut 2 positions into it, dropping the fourth.
    let third = full
        .input_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| **id == image_id)
        .nth(2)
        .unwrap()
        .0;
    let mid_image = third + 2 * 4 + 2;
    let n_ids = full.input_ids.len();
    let expanded = full.expanded_len;
    assert_eq!(full.pixel_values.n_tiles, 4);
    assert_eq!(expanded, n_ids + full.pixel_values.n_tiles * 4);
    // Limits: one cutting into the answer (the ids fit, the expanded sequence does not), one
    // cutting through the second image's tiles (both truncations apply).
    for max_len in [expanded - 6, mid_image] {
        let options = PrepareOptions {
            model_max_length: Some(max_len),
            image_aspect_ratio: None,
        };
        let preparer = SamplePreparer::from_checkpoint(&tiny_checkpoint(), &options).unwrap();
        let cut = preparer.prepare(&sample).unwrap();
        assert_eq!(cut.expanded_len, max_len);
        assert!(cut.num_loss_tokens < full.num_loss_tokens);

        // The model, told the same limit, prepares the record with its own processor and
        // splices and truncates it as VILA's _embed.
        let root = tiny_checkpoint();
        let layout = nvila_model::CheckpointLayout::open(&root).unwrap();
        let mut config =
            processor_config_for(&layout.config, 56, &root.join("config.json")).unwrap();
        config.model_max_length = Some(max_len);
        let model =
            NvilaModel::from_checkpoint_with(&root, &Device::flex(), None, Some(config)).unwrap();
        let reference_sample = model
            .processor
            .process_training(&turns_of(&rec), &images, &SystemPrompt::Default)
            .unwrap();
        assert_eq!(
            cut.num_supervised_tokens,
            reference_sample
                .labels
                .iter()
                .filter(|&&l| l != IGNORE_INDEX)
                .count()
        );
        let pixels = |p: &nvila_model::processor::PixelValues| (p.n_tiles > 0).then_some(p.clone());
        let reference = model
            .embed_inputs(
                &reference_sample.input_ids,
                pixels(&reference_sample.pixel_values).as_ref(),
                Some(&reference_sample.labels),
            )
            .unwrap();
        let ours = model
            .embed_inputs(
                &cut.input_ids,
                pixels(&cut.pixel_values).as_ref(),
                Some(&cut.labels),
            )
            .unwrap();
        assert!(cut.pixel_values.n_tiles <= reference_sample.pixel_values.n_tiles);
        let ref_labels = reference.labels.unwrap();
        assert_eq!(ref_labels.len(), max_len);
        assert_eq!(ours.labels.unwrap(), ref_labels, "max_len {max_len}");
        assert_eq!(
            ref_labels[1..]
                .iter()
                .filter(|&&l| l != IGNORE_INDEX)
                .count(),
            cut.num_loss_tokens
        );
        let a = reference.embeds.into_data().try_to_vec::<f32>().unwrap();
        let b = ours.embeds.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(a, b, "max_len {max_len}");
        if max_len == mid_image {
            assert_eq!(
                cut.pixel_values.n_tiles, 3,
                "the tile past the cut is dropped"
            );
            assert_eq!(cut.tiles_per_image, vec![1, 2]);
        }
    }
}
