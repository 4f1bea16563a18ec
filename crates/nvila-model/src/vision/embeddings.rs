//! SigLIP patch embedding: a Conv2d with kernel = stride = patch size and valid padding, plus
//! one learned position vector per patch; there is no class token
//! (`transformers/models/siglip/modeling_siglip.py::SiglipVisionEmbeddings`).

use burn::module::Module;
use burn::nn::Embedding;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use crate::error::ModelError;
use crate::vision::config::SiglipVisionConfig;
use crate::weights::Weights;

/// `vision_model.embeddings`.
#[derive(Module, Debug)]
pub struct SiglipVisionEmbeddings {
    /// Weight `[C, num_channels, patch, patch]`, bias `[C]`; stride `patch`, no padding.
    pub patch_embedding: Conv2d,
    /// Weight `[num_patches, C]`: row `r * patches_per_side + c` for patch (row r, column c).
    pub position_embedding: Embedding,
}

impl SiglipVisionEmbeddings {
    /// Loads `patch_embedding` and `position_embedding` under `weights` (at
    /// `vision_model.embeddings`).
    pub fn load(
        weights: &Weights,
        config: &SiglipVisionConfig,
    ) -> Result<SiglipVisionEmbeddings, ModelError> {
        let patch = config.patch_size;
        Ok(SiglipVisionEmbeddings {
            patch_embedding: weights.conv2d(
                "patch_embedding",
                [config.hidden_size, config.num_channels, patch, patch],
                [patch, patch],
                true,
            )?,
            position_embedding: weights.embedding(
                "position_embedding",
                config.num_patches(),
                config.hidden_size,
            )?,
        })
    }

    /// Patches to tokens plus positions.
    ///
    /// # Shapes
    /// - `pixels`: `[n_tiles, num_channels, image_size, image_size]`, in the weights' dtype
    /// - returns: `[n_tiles, num_patches, C]`, tokens row-major over the patch grid
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        // [n, C, rows, cols] -> [n, C, rows * cols] -> [n, rows * cols, C]: HF's
        // `patch_embeds.flatten(2).transpose(1, 2)`.
        let patches = self
            .patch_embedding
            .forward(pixels)
            .flatten::<3>(2, 3)
            .swap_dims(1, 2);
        let positions = self.position_embedding.weight.val().unsqueeze_dim::<3>(0);
        patches + positions
    }
}
