//! Qwen2 checkpoint loading: every tensor used, and clear errors naming the key for a missing
//! tensor, a wrong shape and an unused extra tensor; tied embeddings.
//!
//! Each case rewrites the tiny checkpoint (`fixtures/golden/tiny-nvila/llm/`, written by
//! `tests/fixtures/qwen2/gen.py`) into a temporary folder as one `model.safetensors`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use nvila_model::ModelError;
use nvila_model::text::{Qwen2Config, Qwen2ForCausalLM};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn llm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/tiny-nvila/llm")
}

/// Every tensor of the sharded checkpoint: name → (shape, f32 little-endian bytes).
fn checkpoint_tensors() -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(llm_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.starts_with("model-") && name.ends_with(".safetensors")) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        for (key, view) in st.tensors() {
            assert_eq!(view.dtype(), Dtype::F32);
            out.insert(key, (view.shape().to_vec(), view.data().to_vec()));
        }
    }
    out
}

/// Writes `tensors` as `dir/model.safetensors` and the fixture's config (edited by `edit`).
fn write_checkpoint(
    dir: &Path,
    tensors: &BTreeMap<String, (Vec<usize>, Vec<u8>)>,
    edit: impl Fn(String) -> String,
) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (shape, data))| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    let config = std::fs::read_to_string(llm_dir().join("config.json")).unwrap();
    std::fs::write(dir.join("config.json"), edit(config)).unwrap();
}

fn load_err(tensors: &BTreeMap<String, (Vec<usize>, Vec<u8>)>) -> ModelError {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), tensors, |c| c);
    Qwen2ForCausalLM::from_pretrained(dir.path(), &Device::flex(), None).unwrap_err()
}

#[test]
fn fixture_loads_with_no_unused_keys() {
    let dir = llm_dir();
    let config = Qwen2Config::from_file(&dir.join("config.json")).unwrap();
    assert_eq!(
        (
            config.vocab_size,
            config.hidden_size,
            config.num_hidden_layers
        ),
        (512, 64, 2)
    );
    let w = nvila_model::Weights::open(&dir, &Device::flex(), None).unwrap();
    Qwen2ForCausalLM::load(&w, &config).unwrap();
    assert_eq!(w.unused_keys(), Vec::<String>::new());
}

#[test]
fn missing_tensor_names_the_key() {
    let mut tensors = checkpoint_tensors();
    tensors.remove("model.layers.1.mlp.up_proj.weight").unwrap();
    let err = load_err(&tensors);
    assert!(matches!(err, ModelError::MissingKeys { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("model.layers.1.mlp.up_proj.weight"),
        "{err}"
    );
}

#[test]
fn wrong_shape_names_the_key() {
    let mut tensors = checkpoint_tensors();
    let (shape, data) = tensors
        .get_mut("model.layers.0.self_attn.k_proj.bias")
        .unwrap();
    *shape = vec![shape[0] - 1];
    data.truncate(data.len() - 4);
    let err = load_err(&tensors);
    let msg = err.to_string();
    assert!(matches!(err, ModelError::BadTensor { .. }), "{err:?}");
    assert!(
        msg.contains("model.layers.0.self_attn.k_proj.bias") && msg.contains("[31]"),
        "{msg}"
    );
}

#[test]
fn unused_extra_tensor_names_the_key() {
    let mut tensors = checkpoint_tensors();
    let extra = "model.layers.0.self_attn.rotary_emb.inv_freq".to_string();
    tensors.insert(extra.clone(), (vec![8], vec![0u8; 32]));
    let err = load_err(&tensors);
    assert!(matches!(err, ModelError::UnusedKeys { .. }), "{err:?}");
    assert!(err.to_string().contains(&extra), "{err}");
}

#[test]
fn tied_embeddings_use_embed_tokens_for_logits() {
    let mut tensors = checkpoint_tensors();
    tensors.remove("lm_head.weight").unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), &tensors, |c| {
        c.replace(
            r#""tie_word_embeddings": false"#,
            r#""tie_word_embeddings": true"#,
        )
    });
    let device = Device::flex();
    let model = Qwen2ForCausalLM::from_pretrained(dir.path(), &device, None).unwrap();
    assert!(model.lm_head.is_none());
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 7, 300], [1, 3]), &device);
    let hidden = model
        .forward(model.embed(ids.clone()).unwrap(), None, None)
        .unwrap();
    let embed = model.model.embed_tokens.weight.val(); // [vocab, hidden]
    let want = hidden.matmul(embed.transpose().unsqueeze::<3>());
    let got = model.forward_ids(ids).unwrap();
    got.into_data()
        .assert_approx_eq::<f32>(&want.into_data(), burn::tensor::Tolerance::default());
}

#[test]
fn out_of_vocabulary_id_is_an_input_error() {
    let device = Device::flex();
    let model = Qwen2ForCausalLM::from_pretrained(&llm_dir(), &device, Some(DType::F32)).unwrap();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![3i64, 512], [1, 2]), &device);
    assert!(matches!(model.forward_ids(ids), Err(ModelError::Input(_))));
}

#[test]
fn embeddings_in_another_dtype_are_an_input_error() {
    let device = Device::flex();
    let model = Qwen2ForCausalLM::from_pretrained(&llm_dir(), &device, None).unwrap();
    let embeds = Tensor::<3>::zeros([1, 2, 64], (&device, DType::BF16));
    assert!(matches!(
        model.forward(embeds, None, None),
        Err(ModelError::Input(_))
    ));
}
