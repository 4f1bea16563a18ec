//! Parts of a model tuned in full beside the adapters (VILA's `tune_mm_projector`,
//! `tune_vision_tower`), as an optimizer sees them: every trainable non-LoRA parameter under its
//! PyTorch key (`base_model.model.<path>`, the key of `non_lora_trainables`), flattened to a
//! `[1, n]` row, with the flag HF's weight-decay rule needs.
//!
//! Rows keep burn's element order (a `Linear` weight is `[in, out]` here, `[out, in]` in PyTorch):
//! AdamW and the global-norm clip are element-wise, so the order does not matter to them, and
//! files are written by [`crate::non_lora_trainables`], which transposes.
//!
//! Parameters become trainable f32 leaves ([`make_trainable`]): the f32 master weights of
//! mixed-precision training live in the module itself, which casts its input to them.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{DType, Gradients, Tensor};

use crate::factors::PEFT_KEY_PREFIX;
use crate::trainables::{is_lora_factor, torch_name};
use crate::walk::{ParamInfo, Stack};

/// One trainable non-LoRA parameter.
pub struct FlatParam {
    /// `base_model.model.<PyTorch path>`.
    pub key: String,
    /// Inside a norm module (HF's `ALL_LAYERNORM_LAYERS` test): no weight decay.
    pub in_norm: bool,
    /// The value, f32, no graph, `[1, n]`.
    pub value: Tensor<2>,
}

fn row<const D: usize>(t: Tensor<D>) -> Tensor<2> {
    let n = t.dims().iter().product::<usize>();
    t.reshape([1, n])
}

/// Key and norm flag of the parameter at the current position, `None` for a LoRA factor or a
/// parameter autodiff does not track.
fn key_of<const D: usize>(stack: &Stack, param: &Param<Tensor<D>>) -> Option<(String, bool)> {
    let path = stack.path();
    if !param.is_require_grad() || is_lora_factor(&path) {
        return None;
    }
    let info = ParamInfo {
        path,
        owner: stack.owner(),
        segment_owners: stack.owners(),
        dims: param.dims().to_vec(),
        require_grad: true,
    };
    let (name, _) = torch_name(&info);
    let owner = info.owner.strip_prefix("Struct:").unwrap_or(&info.owner);
    Some((format!("{PEFT_KEY_PREFIX}{name}"), owner.ends_with("Norm")))
}

struct Collect<'a> {
    stack: Stack,
    grads: Option<&'a mut Gradients>,
    params: Vec<FlatParam>,
    taken: Vec<(String, Tensor<2>)>,
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some((key, in_norm)) = key_of(&self.stack, param) else {
            return;
        };
        match self.grads.as_deref_mut() {
            Some(grads) => {
                if let Some(g) = param.val().grad_remove(grads) {
                    self.taken.push((key, row(g).cast(DType::F32)));
                }
            }
            None => self.params.push(FlatParam {
                key,
                in_norm,
                value: row(param.val().inner()).cast(DType::F32),
            }),
        }
    }
}

/// Every trainable non-LoRA parameter of `module`, in visiting order (PyTorch's
/// `named_parameters()` order for modules whose fields follow the checkpoint).
pub fn flat_trainables<M: Module>(module: &M) -> Vec<FlatParam> {
    let mut c = Collect {
        stack: Stack::default(),
        grads: None,
        params: Vec::new(),
        taken: Vec::new(),
    };
    module.visit(&mut c);
    c.params
}

/// Takes the gradients of [`flat_trainables`]' parameters out of `grads`, as f32 rows by key
/// (parameters without a gradient are left out).
pub fn take_flat_grads<M: Module>(module: &M, grads: &mut Gradients) -> Vec<(String, Tensor<2>)> {
    let mut c = Collect {
        stack: Stack::default(),
        grads: Some(grads),
        params: Vec::new(),
        taken: Vec::new(),
    };
    module.visit(&mut c);
    c.taken
}

struct SetFlat<'a> {
    stack: Stack,
    values: &'a mut BTreeMap<String, Tensor<2>>,
}

impl ModuleMapper for SetFlat<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some((key, _)) = key_of(&self.stack, &param) else {
            return param;
        };
        match self.values.remove(&key) {
            Some(v) => param.map(|old| v.reshape(old.dims()).autodiff().require_grad()),
            None => param,
        }
    }
}

/// Replaces the values of [`flat_trainables`]' parameters by the rows in `values` (by key; the
/// used entries are removed), keeping parameter ids; each becomes a trainable leaf again.
pub fn set_flat<M: Module>(module: M, values: &mut BTreeMap<String, Tensor<2>>) -> M {
    module.map(&mut SetFlat {
        stack: Stack::default(),
        values,
    })
}

struct MakeTrainable;

impl ModuleMapper for MakeTrainable {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param
            .map(|t| t.inner().cast(DType::F32).autodiff())
            .set_require_grad(true)
    }
}

/// Every parameter of `module` as an f32 trainable leaf (call on a module on an autodiff
/// device; its forward must cast its input to its weights' dtype).
pub fn make_trainable<M: Module>(module: M) -> M {
    module.map(&mut MakeTrainable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
    use burn::tensor::{Device, Distribution};

    #[derive(Module, Debug)]
    struct Net {
        fc: Linear,
        norm: LayerNorm,
        frozen: Linear,
    }

    fn net(device: &Device) -> Net {
        Net {
            fc: LinearConfig::new(3, 4).init(device),
            norm: LayerNormConfig::new(4).init(device),
            frozen: LinearConfig::new(4, 2).init(device).no_grad(),
        }
    }

    #[test]
    fn trainables_grads_and_updates_follow_pytorch_keys() {
        let device = Device::flex().autodiff();
        let mut m = net(&device);
        m.fc = make_trainable(m.fc);
        m.norm = make_trainable(m.norm);
        let params = flat_trainables(&m);
        let keys: Vec<(&str, bool, usize)> = params
            .iter()
            .map(|p| (p.key.as_str(), p.in_norm, p.value.dims()[1]))
            .collect();
        // Visiting order = field order; the frozen layer is left out; rows of numel elements.
        assert_eq!(
            keys,
            [
                ("base_model.model.fc.weight", false, 12),
                ("base_model.model.fc.bias", false, 4),
                ("base_model.model.norm.weight", true, 4),
                ("base_model.model.norm.bias", true, 4),
            ]
        );

        let x = Tensor::<2>::random([5, 3], Distribution::Normal(0.0, 1.0), &device);
        let y = m.frozen.forward(m.norm.forward(m.fc.forward(x)));
        let mut grads = y.sum().backward();
        let taken = take_flat_grads(&m, &mut grads);
        let lens: Vec<(String, [usize; 2])> =
            taken.iter().map(|(k, g)| (k.clone(), g.dims())).collect();
        assert_eq!(lens.len(), 4);
        assert!(lens.iter().all(|(_, d)| d[0] == 1));
        // Taken out: a second take finds nothing.
        assert!(take_flat_grads(&m, &mut grads).is_empty());

        // Set: fc.weight becomes 0..12 in burn's [in, out] order; the rest is untouched.
        let row = Tensor::<2>::from_data(
            burn::tensor::TensorData::new((0..12).map(|i| i as f32).collect::<Vec<_>>(), [1, 12]),
            &device.clone().without_autodiff(),
        );
        let mut new = BTreeMap::from([("base_model.model.fc.weight".to_string(), row)]);
        let bias_before = m.fc.bias.as_ref().map(|b| b.val().into_data());
        let m = set_flat(m, &mut new);
        assert!(new.is_empty());
        let w: Vec<f32> = m.fc.weight.val().into_data().try_to_vec().unwrap();
        assert_eq!(w, (0..12).map(|i| i as f32).collect::<Vec<_>>());
        assert_eq!(m.fc.bias.as_ref().map(|b| b.val().into_data()), bias_before);
        // Still trainable leaves after the update.
        assert_eq!(flat_trainables(&m).len(), 4);
    }
}
