//! The multimodal projector (`mm_projector/`): vision features `[n_tiles, tokens, C]` to LLM
//! embeddings `[n_tiles, tokens_out, H]`, as VILA's `MultimodalProjector`
//! (`llava/model/multimodal_projector/base_projector.py`) computes it for the
//! `mlp_downsample_2x2_fix` (NVILA) and `mlp_downsample_3x3_fix` (NVILA-Lite) types.
//!
//! VILA builds the projector as an `nn.Sequential` named `layers`, and `MultimodalProjector.
//! save_pretrained` writes its state dict as is, so the checkpoint keys are `layers.{i}.weight`
//! / `layers.{i}.bias` with `i` the position in the sequence (parameter-free positions have no
//! keys). [`Projector::layers`] is that sequence, position for position. The LayerNorms are torch
//! defaults (eps 1e-5) and the GELUs are torch's exact erf GELU, unlike SigLIP's eps 1e-6 and
//! tanh GELU.
//!
//! Files: [`config`] (`config.json`, the type) and [`downsample`] (the k×k token merge).

pub mod config;
pub mod downsample;

pub use config::{ProjectorConfig, ProjectorType};
pub use downsample::DownSampleBlockFix;

use std::path::Path;

use burn::module::Module;
use burn::nn::{Gelu, LayerNorm, Linear};
use burn::tensor::{DType, Device, Tensor};

use crate::error::ModelError;
use crate::weights::Weights;

/// `nn.LayerNorm`'s default epsilon; VILA's projector never sets another.
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// One position of VILA's `nn.Sequential`.
#[derive(Module, Debug)]
pub enum ProjectorLayer {
    /// `DownSample{2x2,3x3}BlockFix`.
    DownSample(DownSampleBlockFix),
    /// `nn.LayerNorm(d)`: `[d]` weight and bias, eps 1e-5.
    LayerNorm(LayerNorm),
    /// `nn.Linear(d_in, d_out)`: `[d_in, d_out]` (transposed from HF) + bias `[d_out]`.
    Linear(Linear),
    /// `nn.GELU()`: exact (erf) GELU.
    Gelu(Gelu),
}

/// The layer recipe of a type, position by position (VILA's `MultimodalProjector.__init__`).
enum Step {
    DownSample(usize),
    LayerNorm(usize),
    Linear(usize, usize),
    Gelu,
}

fn recipe(projector_type: ProjectorType, c: usize, h: usize) -> Vec<Step> {
    match projector_type {
        ProjectorType::MlpDownsample2x2Fix => vec![
            Step::DownSample(2),
            Step::LayerNorm(4 * c),
            Step::Linear(4 * c, h),
            Step::Gelu,
            Step::Linear(h, h),
        ],
        ProjectorType::MlpDownsample3x3Fix => vec![
            Step::DownSample(3),
            Step::LayerNorm(9 * c),
            Step::Linear(9 * c, 3 * c),
            Step::Gelu,
            Step::LayerNorm(3 * c),
            Step::Linear(3 * c, h),
            Step::Gelu,
            Step::Linear(h, h),
        ],
    }
}

/// VILA's `MultimodalProjector` for a downsampling type.
#[derive(Module, Debug)]
pub struct Projector {
    /// `layers[i]` holds the checkpoint's `layers.{i}.*`; `layers[0]` is the token merge.
    pub layers: Vec<ProjectorLayer>,
    /// Input width `C` (VILA's `mm_hidden_size`, the vision tower's `hidden_size`).
    pub mm_hidden: usize,
    /// Output width `H` (the LLM's `hidden_size`).
    pub llm_hidden: usize,
    /// Block side k of the token merge.
    pub downsample_rate: usize,
}

impl Projector {
    /// Opens an `mm_projector/` folder (`config.json` + `model.safetensors`) on `device`,
    /// converting weights to `dtype` (`None`: the file's), and loads the projector.
    pub fn from_pretrained(
        dir: &Path,
        device: &Device,
        dtype: Option<DType>,
        mm_hidden: usize,
        llm_hidden: usize,
    ) -> Result<Projector, ModelError> {
        let config = ProjectorConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::open(dir, device, dtype)?;
        Self::load(&weights, &config, mm_hidden, llm_hidden)
    }

    /// Loads the projector of `config`'s type from `weights`, a view of the `mm_projector/`
    /// folder (keys `layers.N.*`), for vision width `mm_hidden` and LLM width `llm_hidden`.
    /// Finishes the checkpoint: every key must be used.
    pub fn load(
        weights: &Weights,
        config: &ProjectorConfig,
        mm_hidden: usize,
        llm_hidden: usize,
    ) -> Result<Projector, ModelError> {
        let projector_type = config.projector_type(&weights.dir().join("config.json"))?;
        let root = weights.pp("layers");
        let layers = recipe(projector_type, mm_hidden, llm_hidden)
            .into_iter()
            .enumerate()
            .map(|(i, step)| {
                let name = i.to_string();
                Ok(match step {
                    Step::DownSample(rate) => {
                        ProjectorLayer::DownSample(DownSampleBlockFix { rate })
                    }
                    Step::LayerNorm(d) => {
                        ProjectorLayer::LayerNorm(root.layer_norm(&name, d, LAYER_NORM_EPS)?)
                    }
                    Step::Linear(d_in, d_out) => {
                        ProjectorLayer::Linear(root.linear(&name, d_in, d_out, true)?)
                    }
                    Step::Gelu => ProjectorLayer::Gelu(Gelu::new()),
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        weights.finish(|_| false)?;
        Ok(Projector {
            layers,
            mm_hidden,
            llm_hidden,
            downsample_rate: projector_type.downsample_rate(),
        })
    }

    /// Output tokens per tile for `n_tokens` input tokens (121 for NVILA-Lite's 1024), or `None`
    /// if `n_tokens` is not a positive square.
    pub fn tokens_out(&self, n_tokens: usize) -> Option<usize> {
        DownSampleBlockFix {
            rate: self.downsample_rate,
        }
        .tokens_out(n_tokens)
    }

    /// Merges k×k token blocks and projects them to the LLM width. The input is cast to the
    /// weights' dtype; the output is in that dtype.
    ///
    /// # Shapes
    /// - `features`: `[n_tiles, s*s, mm_hidden]` (the vision tower's output)
    /// - returns: `[n_tiles, ceil(s/k)^2, llm_hidden]`
    pub fn forward(&self, features: Tensor<3>) -> Result<Tensor<3>, ModelError> {
        let dims = features.dims();
        let [n_tiles, n_tokens, width] = dims;
        if n_tiles == 0 || width != self.mm_hidden || self.tokens_out(n_tokens).is_none() {
            let k = self.downsample_rate;
            return Err(ModelError::Input(format!(
                "projector: feature tensor has shape {dims:?}, expected [n_tiles >= 1, s*s, {}] \
                 (a square grid of tokens for the {k}x{k} merge)",
                self.mm_hidden
            )));
        }
        let features = match self.weight_dtype() {
            Some(dtype) => features.cast(dtype),
            None => features,
        };
        let mut x = features;
        for layer in &self.layers {
            x = match layer {
                ProjectorLayer::DownSample(block) => block.forward(x)?,
                ProjectorLayer::LayerNorm(norm) => norm.forward(x),
                ProjectorLayer::Linear(linear) => linear.forward(x),
                ProjectorLayer::Gelu(gelu) => gelu.forward(x),
            };
        }
        Ok(x)
    }

    /// The dtype of the first parameterised layer.
    fn weight_dtype(&self) -> Option<DType> {
        self.layers.iter().find_map(|layer| match layer {
            ProjectorLayer::LayerNorm(norm) => Some(norm.gamma.val().dtype()),
            ProjectorLayer::Linear(linear) => Some(linear.weight.val().dtype()),
            ProjectorLayer::DownSample(_) | ProjectorLayer::Gelu(_) => None,
        })
    }
}
