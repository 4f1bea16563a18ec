//! The vision tower and the projector under VILA's module paths, for the parts trained in full
//! (`tune_vision_tower`, `tune_mm_projector`): a module walk over [`VilaParts`] names their
//! parameters as VILA's `LlavaLlamaModel.named_parameters()` does —
//! `vision_tower.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight` (VILA's
//! `SiglipVisionTower` wrapper → HF `SiglipVisionModel` → `SiglipVisionTransformer`) and
//! `mm_projector.layers.2.weight` — which are the keys of `non_lora_trainables` files
//! (nvila.md §6), and visits them in that order (tower, then projector).

use burn::module::Module;

use crate::nvila::NvilaModel;
use crate::projector::Projector;
use crate::text::Projection;
use burn::nn::Linear;

use crate::vision::tower::SiglipVisionTower;

/// HF `SiglipVisionModel`: holds the transformer as `vision_model`.
#[derive(Module, Debug)]
pub struct HfSiglipVisionModel<P: Projection = Linear> {
    /// `SiglipVisionTransformer` (our tower, cut at the selected layer).
    pub vision_model: SiglipVisionTower<P>,
}

/// VILA's `SiglipVisionTower` wrapper: holds the HF model as `vision_tower`.
#[derive(Module, Debug)]
pub struct VilaVisionTower<P: Projection = Linear> {
    /// HF `SiglipVisionModel`.
    pub vision_tower: HfSiglipVisionModel<P>,
}

/// The tower and the projector under `LlavaLlamaModel`'s field names.
#[derive(Module, Debug)]
pub struct VilaParts<P: Projection = Linear> {
    /// `LlavaLlamaModel.vision_tower`.
    pub vision_tower: VilaVisionTower<P>,
    /// `LlavaLlamaModel.mm_projector`.
    pub mm_projector: Projector,
}

impl<P: Projection> VilaParts<P> {
    /// The model's tower and projector (clones share the parameters' tensors and autodiff ids).
    pub fn of(model: &NvilaModel<P>) -> VilaParts<P> {
        VilaParts {
            vision_tower: VilaVisionTower {
                vision_tower: HfSiglipVisionModel {
                    vision_model: model.vision_tower.clone(),
                },
            },
            mm_projector: model.mm_projector.clone(),
        }
    }

    /// Puts the tower and the projector back into `model`.
    pub fn put_into(self, model: &mut NvilaModel<P>) {
        model.vision_tower = self.vision_tower.vision_tower.vision_model;
        model.mm_projector = self.mm_projector;
    }
}

/// Whether the VILA module or parameter path `path` (`vision_tower.vision_tower.vision_model.…`)
/// lies in the part of SigLIP that a tower cut after `kept` layers does not hold: later encoder
/// layers, `post_layernorm`, `head`. VILA trains and saves them (with no gradient: unchanged);
/// they never change the selected hidden state.
pub fn beyond_cut_tower(path: &str, kept: usize) -> bool {
    let Some(rest) = path.strip_prefix(crate::nvila::TOWER_PATH) else {
        return false;
    };
    if rest.starts_with("post_layernorm") || rest.starts_with("head.") {
        return true;
    }
    rest.strip_prefix("encoder.layers.")
        .and_then(|r| r.split('.').next())
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i >= kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_beyond_the_cut() {
        let p = |rest: &str| format!("{}{rest}", crate::nvila::TOWER_PATH);
        assert!(beyond_cut_tower(&p("encoder.layers.2.mlp.fc1"), 2));
        assert!(beyond_cut_tower(
            &p("encoder.layers.12.self_attn.q_proj.weight"),
            2
        ));
        assert!(beyond_cut_tower(&p("post_layernorm.weight"), 2));
        assert!(!beyond_cut_tower(&p("encoder.layers.1.mlp.fc1"), 2));
        assert!(!beyond_cut_tower(
            &p("embeddings.patch_embedding.weight"),
            2
        ));
        assert!(!beyond_cut_tower("llm.model.layers.5.mlp.up_proj", 2));
    }
}
