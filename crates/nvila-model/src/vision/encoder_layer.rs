//! One SigLIP encoder layer, pre-LayerNorm: `x + attn(ln1(x))`, then `x + mlp(ln2(x))`
//! (`transformers/models/siglip/modeling_siglip.py::SiglipEncoderLayer`).

use burn::module::Module;
use burn::nn::LayerNorm;
use burn::tensor::Tensor;

use crate::error::ModelError;
use crate::vision::attention::SiglipAttention;
use crate::vision::config::SiglipVisionConfig;
use crate::vision::mlp::SiglipMlp;
use crate::weights::Weights;

/// `vision_model.encoder.layers.N`.
#[derive(Module, Debug)]
pub struct SiglipEncoderLayer {
    /// `[C]` weight and bias, eps `layer_norm_eps`.
    pub layer_norm1: LayerNorm,
    /// Multi-head self-attention.
    pub self_attn: SiglipAttention,
    /// `[C]` weight and bias, eps `layer_norm_eps`.
    pub layer_norm2: LayerNorm,
    /// `fc1`, tanh-GELU, `fc2`.
    pub mlp: SiglipMlp,
}

impl SiglipEncoderLayer {
    /// Loads one layer under `weights` (at `vision_model.encoder.layers.N`).
    pub fn load(
        weights: &Weights,
        config: &SiglipVisionConfig,
    ) -> Result<SiglipEncoderLayer, ModelError> {
        let (c, eps) = (config.hidden_size, config.layer_norm_eps);
        Ok(SiglipEncoderLayer {
            layer_norm1: weights.layer_norm("layer_norm1", c, eps)?,
            self_attn: SiglipAttention::load(&weights.pp("self_attn"), config)?,
            layer_norm2: weights.layer_norm("layer_norm2", c, eps)?,
            mlp: SiglipMlp::load(&weights.pp("mlp"), config)?,
        })
    }

    /// # Shapes
    /// - `x`: `[n_tiles, tokens, C]`
    /// - returns: `[n_tiles, tokens, C]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.self_attn.forward(self.layer_norm1.forward(x));
        x.clone() + self.mlp.forward(self.layer_norm2.forward(x))
    }
}
