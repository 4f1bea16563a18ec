//! SigLIP MLP: `fc2(gelu_tanh(fc1(x)))` (`transformers/models/siglip/modeling_siglip.py::
//! SiglipMLP` with `hidden_act = gelu_pytorch_tanh`, the only activation the config accepts).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::gelu_approximate;

use crate::error::ModelError;
use crate::text::Projection;
use crate::vision::config::SiglipVisionConfig;
use crate::weights::Weights;

/// `vision_model.encoder.layers.N.mlp`.
#[derive(Module, Debug)]
pub struct SiglipMlp<P: Projection = Linear> {
    /// `[C, intermediate]` + bias `[intermediate]`.
    pub fc1: P,
    /// `[intermediate, C]` + bias `[C]`.
    pub fc2: P,
}

impl SiglipMlp {
    /// Loads `fc1` and `fc2` under `weights` (at `...layers.N.mlp`).
    pub fn load(weights: &Weights, config: &SiglipVisionConfig) -> Result<SiglipMlp, ModelError> {
        let (c, inner) = (config.hidden_size, config.intermediate_size);
        Ok(SiglipMlp {
            fc1: weights.linear("fc1", c, inner, true)?,
            fc2: weights.linear("fc2", inner, c, true)?,
        })
    }
}

impl<P: Projection> SiglipMlp<P> {
    /// Replaces `fc1` and `fc2` by `f(prefix.name, projection)`.
    pub fn map_projections<Q: Projection, E>(
        self,
        prefix: &str,
        f: &mut impl FnMut(&str, P) -> Result<Q, E>,
    ) -> Result<SiglipMlp<Q>, E> {
        Ok(SiglipMlp {
            fc1: f(&format!("{prefix}.fc1"), self.fc1)?,
            fc2: f(&format!("{prefix}.fc2"), self.fc2)?,
        })
    }

    /// # Shapes
    /// - `x`: `[n_tiles, tokens, C]`
    /// - returns: `[n_tiles, tokens, C]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        // `gelu_pytorch_tanh` is `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, which is
        // burn's `gelu_approximate`; the projector, by contrast, uses the exact erf GELU.
        self.fc2.forward(gelu_approximate(self.fc1.forward(x)))
    }
}
