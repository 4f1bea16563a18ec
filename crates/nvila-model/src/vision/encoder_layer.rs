//! One SigLIP encoder layer, pre-LayerNorm: `x + attn(ln1(x))`, then `x + mlp(ln2(x))`
//! (`transformers/models/siglip/modeling_siglip.py::SiglipEncoderLayer`).

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;

use crate::error::ModelError;
use crate::text::Projection;
use crate::vision::attention::SiglipAttention;
use crate::vision::config::SiglipVisionConfig;
use crate::vision::mlp::SiglipMlp;
use crate::weights::Weights;

/// `vision_model.encoder.layers.N`.
#[derive(Module, Debug)]
pub struct SiglipEncoderLayer<P: Projection = Linear> {
    /// `[C]` weight and bias, eps `layer_norm_eps`.
    pub layer_norm1: LayerNorm,
    /// Multi-head self-attention.
    pub self_attn: SiglipAttention<P>,
    /// `[C]` weight and bias, eps `layer_norm_eps`.
    pub layer_norm2: LayerNorm,
    /// `fc1`, tanh-GELU, `fc2`.
    pub mlp: SiglipMlp<P>,
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
}

impl<P: Projection> SiglipEncoderLayer<P> {
    /// The six projections with their paths inside the layer (`self_attn.q_proj`, `mlp.fc1`).
    pub fn projections(&self) -> Vec<(String, &P)> {
        let mut out: Vec<(String, &P)> = self
            .self_attn
            .projections()
            .into_iter()
            .map(|(n, p)| (format!("self_attn.{n}"), p))
            .collect();
        out.push(("mlp.fc1".into(), &self.mlp.fc1));
        out.push(("mlp.fc2".into(), &self.mlp.fc2));
        out
    }

    /// Replaces each projection by `f(prefix.path, projection)`.
    pub fn map_projections<Q: Projection, E>(
        self,
        prefix: &str,
        f: &mut impl FnMut(&str, P) -> Result<Q, E>,
    ) -> Result<SiglipEncoderLayer<Q>, E> {
        Ok(SiglipEncoderLayer {
            layer_norm1: self.layer_norm1,
            self_attn: self
                .self_attn
                .map_projections(&format!("{prefix}.self_attn"), f)?,
            layer_norm2: self.layer_norm2,
            mlp: self.mlp.map_projections(&format!("{prefix}.mlp"), f)?,
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
