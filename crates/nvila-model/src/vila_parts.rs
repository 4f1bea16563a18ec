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
use crate::vision::tower::SiglipVisionTower;

/// HF `SiglipVisionModel`: holds the transformer as `vision_model`.
#[derive(Module, Debug)]
pub struct HfSiglipVisionModel {
    /// `SiglipVisionTransformer` (our tower, cut at the selected layer).
    pub vision_model: SiglipVisionTower,
}

/// VILA's `SiglipVisionTower` wrapper: holds the HF model as `vision_tower`.
#[derive(Module, Debug)]
pub struct VilaVisionTower {
    /// HF `SiglipVisionModel`.
    pub vision_tower: HfSiglipVisionModel,
}

/// The tower and the projector under `LlavaLlamaModel`'s field names.
#[derive(Module, Debug)]
pub struct VilaParts {
    /// `LlavaLlamaModel.vision_tower`.
    pub vision_tower: VilaVisionTower,
    /// `LlavaLlamaModel.mm_projector`.
    pub mm_projector: Projector,
}

impl VilaParts {
    /// The model's tower and projector (clones share the parameters' tensors and autodiff ids).
    pub fn of<P: Projection>(model: &NvilaModel<P>) -> VilaParts {
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
    pub fn put_into<P: Projection>(self, model: &mut NvilaModel<P>) {
        model.vision_tower = self.vision_tower.vision_tower.vision_model;
        model.mm_projector = self.mm_projector;
    }
}
