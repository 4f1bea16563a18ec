//! LoRA on NVILA's LLM and (VILA's `lora_vt`) vision tower: which projections get an adapter
//! (VILA's `find_all_linear_names`), the projection type the trainer runs (`TrainProjection`),
//! and the PEFT view of the trainables.
//!
//! Module paths are VILA's (`llm.model.layers.0.self_attn.q_proj`,
//! `vision_tower.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj`), as
//! `NvilaModel::map_projections` hands them over, so adapter files carry PEFT's keys
//! `base_model.model.llm.model.layers.0.self_attn.q_proj.lora_A.weight` (nvila.md §6).
//!
//! The tower is cut at the selected layer, so an adapter made by PEFT on VILA's full tower also
//! holds factors for the layers after it; they never change the outputs (VILA trains them with
//! no gradient) and are dropped when such an adapter is loaded.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use lora::{
    AdapterConfig, LoraError, LoraFactors, LoraLinear, LoraLinearConfig, ModuleInfo, PeftAdapter,
    TargetModules, find_all_linear_names, lora_a_key, lora_b_key, module_seed,
};
use nvila_model::nvila::{LLM_PATH, TOWER_PATH};
use nvila_model::text::decoder::Qwen2DecoderLayer;
use nvila_model::text::{Projection, Qwen2ForCausalLM};
use nvila_model::vision::SiglipVisionTower;
use nvila_model::{NvilaModel, beyond_cut_tower};

/// Prefix of the LLM's modules in VILA's model (`LlavaLlamaModel.llm`).
pub const LLM_PREFIX: &str = LLM_PATH;

/// A decoder projection during training: frozen, or with a LoRA adapter.
// Inline variants: burn's `Module` derive has no `Box<M>` module; there are only 7 per layer.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum TrainProjection {
    /// Not targeted: the base layer, no gradients.
    Frozen(Linear),
    /// Targeted: base frozen, `lora_A` / `lora_B` trainable.
    Lora(LoraLinear),
}

impl Projection for TrainProjection {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            TrainProjection::Frozen(l) => l.forward(x),
            TrainProjection::Lora(l) => l.forward(x),
        }
    }
}

/// VILA's module path of a projection path inside the LLM.
pub fn vila_path(llm_path: &str) -> String {
    format!("{LLM_PATH}{llm_path}")
}

/// VILA's default targets (`find_all_linear_names(model, lora_llm, lora_vt)`, `llava/train/train.py`):
/// every `nn.Linear` of the LLM except `lm_head` (with `lora_llm`) and of the vision tower (with
/// `lora_vt`; the layers the cut tower holds). The projector's are never listed.
pub fn default_targets<P: Projection>(
    model: &NvilaModel<P>,
    lora_llm: bool,
    lora_vt: bool,
) -> Result<Vec<String>, LoraError> {
    let mut modules: Vec<ModuleInfo> = model
        .llm
        .projections()
        .into_iter()
        .map(|(path, _)| ModuleInfo::linear(vila_path(&path)))
        .collect();
    modules.push(ModuleInfo::linear(vila_path("lm_head")));
    modules.extend(
        model
            .vision_tower
            .projections()
            .into_iter()
            .map(|(path, _)| ModuleInfo::linear(format!("{TOWER_PATH}{path}"))),
    );
    find_all_linear_names(&modules, lora_llm, lora_vt)
}

/// Where the adapters' first values come from.
pub enum AdapterInit<'a> {
    /// PEFT's init (A Kaiming-uniform, B zero), one RNG stream per module from `seed`.
    Fresh {
        /// The adapter's hyperparameters (its `target_modules` list the targets).
        config: &'a AdapterConfig,
        /// `seed` of the run.
        seed: u64,
    },
    /// An adapter folder (PEFT's format): a resumed run's checkpoint, or PEFT-made weights.
    Saved(Box<PeftAdapter>),
}

/// Puts adapters on the projections `init` targets; the rest stay frozen. Every other
/// parameter of `model` (embeddings, norms, `lm_head`, vision tower, projector) is frozen.
pub fn attach(
    model: NvilaModel,
    init: AdapterInit<'_>,
) -> Result<NvilaModel<TrainProjection>, LoraError> {
    let mut model = model;
    model.vision_tower = model.vision_tower.no_grad();
    model.mm_projector = model.mm_projector.no_grad();
    model.llm = model.llm.no_grad();
    match init {
        AdapterInit::Fresh { config, seed } => {
            let selector = lora::TargetSelector::from_config(config)?;
            let model = model.map_projections(|path, base| {
                let path = path.to_string();
                if !selector.matches(&path) {
                    return Ok(TrainProjection::Frozen(base));
                }
                let layer = config
                    .linear_config(&path)?
                    .with_seed(Some(module_seed(seed, &path)))
                    .init(base)?;
                Ok::<_, LoraError>(TrainProjection::Lora(layer))
            })?;
            Ok(model)
        }
        AdapterInit::Saved(adapter) => {
            let mut adapter = *adapter;
            let kept = model.vision_tower.n_layers_run();
            adapter
                .modules
                .retain(|path, _| !beyond_cut_tower(path, kept));
            let selector = lora::TargetSelector::from_config(&adapter.config)?;
            let model = model.map_projections(|path, base| {
                let path = path.to_string();
                if !selector.matches(&path) {
                    return Ok(TrainProjection::Frozen(base));
                }
                Ok::<_, LoraError>(TrainProjection::Lora(adapter.wrap(&path, base)?))
            })?;
            adapter.finish()?;
            Ok(model)
        }
    }
}

/// The adapters of `model` (LLM and tower) in PEFT's layout, by VILA module path.
pub fn factors(
    model: &NvilaModel<TrainProjection>,
) -> Result<BTreeMap<String, LoraFactors>, LoraError> {
    let mut out = BTreeMap::new();
    for (path, p) in model.llm.projections() {
        if let TrainProjection::Lora(l) = p {
            out.insert(vila_path(&path), l.factors()?);
        }
    }
    for (path, p) in model.vision_tower.projections() {
        if let TrainProjection::Lora(l) = p {
            out.insert(format!("{TOWER_PATH}{path}"), l.factors()?);
        }
    }
    Ok(out)
}

/// A trainable tensor: its PEFT key and current value (burn layout, f32).
pub struct Trainable {
    /// `base_model.model.<path>.lora_A.weight` / `…lora_B.weight`.
    pub key: String,
    /// The parameter's value (tracked leaf on an autodiff device).
    pub value: Tensor<2>,
}

/// The trainable tensors of decoder layer `index`, in a fixed order (projection, A then B).
pub fn layer_trainables(
    index: usize,
    layer: &Qwen2DecoderLayer<TrainProjection>,
) -> Vec<Trainable> {
    let mut out = Vec::new();
    for (name, p) in layer.projections() {
        if let TrainProjection::Lora(l) = p {
            out.extend(factor_pair(
                &vila_path(&format!("model.layers.{index}.{name}")),
                l,
            ));
        }
    }
    out
}

/// A layer's two factors under PEFT's keys for module `path`.
fn factor_pair(path: &str, l: &LoraLinear) -> [Trainable; 2] {
    [
        Trainable {
            key: lora_a_key(path),
            value: l.lora_A.weight.val(),
        },
        Trainable {
            key: lora_b_key(path),
            value: l.lora_B.weight.val(),
        },
    ]
}

/// Every trainable tensor of `llm`, in a fixed order (layer, projection, A then B).
pub fn trainables(llm: &Qwen2ForCausalLM<TrainProjection>) -> Vec<Trainable> {
    let layers = llm.model.layers.iter().enumerate();
    layers
        .flat_map(|(i, layer)| layer_trainables(i, layer))
        .collect()
}

/// The tower's adapter tensors (`lora_vt`), in a fixed order (layer, projection, A then B).
pub fn vision_trainables(tower: &SiglipVisionTower<TrainProjection>) -> Vec<Trainable> {
    let mut out = Vec::new();
    for (path, p) in tower.projections() {
        if let TrainProjection::Lora(l) = p {
            out.extend(factor_pair(&format!("{TOWER_PATH}{path}"), l));
        }
    }
    out
}

/// Number of trainable adapter scalars (LLM and tower).
pub fn trainable_count(model: &NvilaModel<TrainProjection>) -> usize {
    trainables(&model.llm)
        .iter()
        .chain(&vision_trainables(&model.vision_tower))
        .map(|t| t.value.dims().iter().product::<usize>())
        .sum()
}

/// Replaces the adapter values (LLM and tower) by `new` (PEFT key → burn-layout f32 tensor),
/// keeping parameter ids and making each a trainable leaf again.
pub fn update(
    model: NvilaModel<TrainProjection>,
    new: &mut BTreeMap<String, Tensor<2>>,
) -> NvilaModel<TrainProjection> {
    let result: Result<_, std::convert::Infallible> = model.map_projections(|path, p| {
        Ok(match p {
            TrainProjection::Lora(mut l) => {
                if let Some(a) = new.remove(&lora_a_key(path)) {
                    l.lora_A.weight = l.lora_A.weight.map(|_| a.autodiff().require_grad());
                }
                if let Some(b) = new.remove(&lora_b_key(path)) {
                    l.lora_B.weight = l.lora_B.weight.map(|_| b.autodiff().require_grad());
                }
                TrainProjection::Lora(l)
            }
            frozen => frozen,
        })
    });
    match result {
        Ok(model) => model,
        Err(never) => match never {},
    }
}

/// Takes the tower's adapter gradients out of `grads` (f32, by PEFT key).
pub fn take_vision_grads(
    tower: &SiglipVisionTower<TrainProjection>,
    grads: &mut burn::tensor::Gradients,
) -> Vec<(String, Tensor<2>)> {
    vision_trainables(tower)
        .into_iter()
        .filter_map(|t| {
            t.value
                .grad_remove(grads)
                .map(|g| (t.key, g.cast(burn::tensor::DType::F32)))
        })
        .collect()
}

/// The adapter of `model` (LLM and tower) as a PEFT adapter with `config`.
pub fn to_peft(
    config: AdapterConfig,
    model: &NvilaModel<TrainProjection>,
) -> Result<PeftAdapter, LoraError> {
    PeftAdapter::new(config, factors(model)?)
}

/// The run's adapter configuration (`LoraConfig` as VILA builds it: `target_modules` the
/// explicit list, `bias: none`, `task_type: CAUSAL_LM`).
pub fn adapter_config(
    r: usize,
    lora_alpha: f64,
    lora_dropout: f64,
    targets: Vec<String>,
    base_model: &str,
) -> AdapterConfig {
    let mut config = AdapterConfig::new(r, lora_alpha, TargetModules::Names(targets));
    config.lora_dropout = lora_dropout;
    config.base_model_name_or_path = Some(base_model.to_string());
    config
}

/// Checks that `LoraLinearConfig` accepts the run's numbers before anything loads.
pub fn check_lora_numbers(r: usize, lora_alpha: f64, lora_dropout: f64) -> Result<(), LoraError> {
    LoraLinearConfig::new(r, lora_alpha)
        .with_lora_dropout(lora_dropout)
        .validate()
}
