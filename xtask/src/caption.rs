//! The demo's last step: a caption from the tiny golden NVILA checkpoint for one demo frame.

use std::path::Path;

use anyhow::Context;
use nvila_model::NvilaModel;
use nvila_model::generate::GenerateOptions;

/// The tiny random NVILA checkpoint committed under `fixtures/golden/` (real HF layout).
pub fn tiny_checkpoint() -> std::path::PathBuf {
    crate::project_root().join("fixtures/golden/tiny-nvila")
}

/// Generates an answer for `prompt` about `image` with the checkpoint at `model` on the CPU,
/// streaming it to stderr; returns the answer.
pub fn caption(
    model: &Path,
    image: &Path,
    prompt: &str,
    max_new_tokens: usize,
) -> anyhow::Result<String> {
    let device = burn::tensor::Device::flex();
    let nvila = NvilaModel::from_checkpoint(model, &device, None)
        .with_context(|| format!("loading {}", model.display()))?;
    let rgb = image::open(image)
        .with_context(|| format!("decoding {}", image.display()))?
        .to_rgb8();
    let opts = GenerateOptions {
        max_new_tokens,
        ..GenerateOptions::default()
    };
    let mut echo = |piece: &str| eprint!("{piece}");
    let text = nvila.generate(prompt, &[rgb], &opts, &mut echo)?;
    eprintln!();
    Ok(text)
}
