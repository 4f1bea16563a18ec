//! LoRA on NVILA's LLM: which projections get an adapter (VILA's `find_all_linear_names`), the
//! projection type the trainer runs (`TrainProjection`), and the PEFT view of the trainables.
//!
//! Module paths are VILA's (`llm.model.layers.0.self_attn.q_proj`): nvila-model hands each
//! decoder projection over with its path inside the LLM and this module prefixes `llm.`, so
//! adapter files carry PEFT's keys `base_model.model.llm.model.layers.0.self_attn.q_proj.lora_A.weight`
//! (nvila.md §6).

use std::collections::BTreeMap;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use lora::{
    AdapterConfig, LoraError, LoraFactors, LoraLinear, LoraLinearConfig, ModuleInfo, PeftAdapter,
    TargetModules, find_all_linear_names, lora_a_key, lora_b_key, module_seed,
};
use nvila_model::NvilaModel;
use nvila_model::text::decoder::Qwen2DecoderLayer;
use nvila_model::text::{Projection, Qwen2ForCausalLM};

/// Prefix of the LLM's modules in VILA's model (`LlavaLlamaModel.llm`).
pub const LLM_PREFIX: &str = "llm.";

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
    format!("{LLM_PREFIX}{llm_path}")
}

/// VILA's default targets (`find_all_linear_names(model, lora_llm, lora_vt)`, `llava/train/train.py`):
/// every `nn.Linear` of the LLM except `lm_head`. The vision tower and projector are not listed
/// because LoRA on them (`lora_vt`) is refused by the configuration.
pub fn default_targets<P: Projection>(
    llm: &Qwen2ForCausalLM<P>,
    lora_llm: bool,
) -> Result<Vec<String>, LoraError> {
    let mut modules: Vec<ModuleInfo> = llm
        .projections()
        .into_iter()
        .map(|(path, _)| ModuleInfo::linear(vila_path(&path)))
        .collect();
    modules.push(ModuleInfo::linear(vila_path("lm_head")));
    find_all_linear_names(&modules, lora_llm, false)
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
            let model = model.map_llm_projections(|path, base| {
                let path = vila_path(path);
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
            let selector = lora::TargetSelector::from_config(&adapter.config)?;
            let model = model.map_llm_projections(|path, base| {
                let path = vila_path(path);
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

/// The adapters of `llm` in PEFT's layout, by VILA module path.
pub fn factors(
    llm: &Qwen2ForCausalLM<TrainProjection>,
) -> Result<BTreeMap<String, LoraFactors>, LoraError> {
    let mut out = BTreeMap::new();
    for (path, p) in llm.projections() {
        if let TrainProjection::Lora(l) = p {
            out.insert(vila_path(&path), l.factors()?);
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
            let path = vila_path(&format!("model.layers.{index}.{name}"));
            out.push(Trainable {
                key: lora_a_key(&path),
                value: l.lora_A.weight.val(),
            });
            out.push(Trainable {
                key: lora_b_key(&path),
                value: l.lora_B.weight.val(),
            });
        }
    }
    out
}

/// Every trainable tensor of `llm`, in a fixed order (layer, projection, A then B).
pub fn trainables(llm: &Qwen2ForCausalLM<TrainProjection>) -> Vec<Trainable> {
    let layers = llm.model.layers.iter().enumerate();
    layers
        .flat_map(|(i, layer)| layer_trainables(i, layer))
        .collect()
}

/// Number of trainable scalars.
pub fn trainable_count(llm: &Qwen2ForCausalLM<TrainProjection>) -> usize {
    trainables(llm)
        .iter()
        .map(|t| t.value.dims().iter().product::<usize>())
        .sum()
}

/// Replaces the adapter values by `new` (PEFT key → burn-layout f32 tensor), keeping parameter
/// ids and making each a trainable leaf again.
pub fn update(
    llm: Qwen2ForCausalLM<TrainProjection>,
    new: &mut BTreeMap<String, Tensor<2>>,
) -> Qwen2ForCausalLM<TrainProjection> {
    let result: Result<_, std::convert::Infallible> = llm.map_projections(|path, p| {
        Ok(match p {
            TrainProjection::Lora(mut l) => {
                let path = vila_path(path);
                if let Some(a) = new.remove(&lora_a_key(&path)) {
                    l.lora_A.weight = l.lora_A.weight.map(|_| a.autodiff().require_grad());
                }
                if let Some(b) = new.remove(&lora_b_key(&path)) {
                    l.lora_B.weight = l.lora_B.weight.map(|_| b.autodiff().require_grad());
                }
                TrainProjection::Lora(l)
            }
            frozen => frozen,
        })
    });
    match result {
        Ok(llm) => llm,
        Err(never) => match never {},
    }
}

/// The adapter of `llm` as a PEFT adapter with `config`.
pub fn to_peft(
    config: AdapterConfig,
    llm: &Qwen2ForCausalLM<TrainProjection>,
) -> Result<PeftAdapter, LoraError> {
    PeftAdapter::new(config, factors(llm)?)
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
