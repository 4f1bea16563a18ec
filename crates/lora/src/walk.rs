//! Walking any burn module by parameter path: burn paths are field names joined by `.` (a `Vec`
//! contributes its index), so a model whose fields carry the checkpoint's names has parameter
//! paths equal to PyTorch's `named_parameters()`, and `<path>.lora_A.weight` finds every
//! [`LoraLinear`](crate::LoraLinear) without knowing the model's type.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

use crate::error::LoraError;

/// One float parameter as the walk sees it.
#[derive(Debug, Clone)]
pub(crate) struct ParamInfo {
    /// Dotted burn path (`layers.0.fc1.lora_A.weight`).
    pub path: String,
    /// The container type of the struct that owns it (`Struct:Linear`), empty at the root.
    pub owner: String,
    /// For each path segment, the container type it is a field / index of (`Struct:Net`, `Vec`).
    pub segment_owners: Vec<String>,
    /// The current shape.
    pub dims: Vec<usize>,
    /// Whether autodiff tracks it now (false on a plain device even when configured trainable).
    pub require_grad: bool,
}

/// The path being walked. An enum's variant name (`Enum:*` containers) is left out of the path:
/// PyTorch has no such level, so `enum L { Plain(Linear), Lora(LoraLinear) }` in field `q_proj`
/// still gives `q_proj.lora_A.weight`.
#[derive(Default)]
pub(crate) struct Stack {
    /// `(name, container type)`, `None` for an enum variant.
    entries: Vec<Option<(String, String)>>,
}

impl Stack {
    pub(crate) fn enter(&mut self, name: &str, container_type: &str) {
        let entry = (!container_type.starts_with("Enum:"))
            .then(|| (name.to_string(), container_type.to_string()));
        self.entries.push(entry);
    }

    pub(crate) fn exit(&mut self) {
        self.entries.pop();
    }

    fn segments(&self) -> impl Iterator<Item = &(String, String)> {
        self.entries.iter().flatten()
    }

    pub(crate) fn path(&self) -> String {
        let names: Vec<&str> = self.segments().map(|(n, _)| n.as_str()).collect();
        names.join(".")
    }

    pub(crate) fn owners(&self) -> Vec<String> {
        self.segments().map(|(_, o)| o.clone()).collect()
    }

    pub(crate) fn owner(&self) -> String {
        self.segments()
            .last()
            .map(|(_, o)| o.clone())
            .unwrap_or_default()
    }
}

struct Lister {
    stack: Stack,
    params: Vec<ParamInfo>,
}

impl ModuleVisitor for Lister {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.params.push(ParamInfo {
            path: self.stack.path(),
            owner: self.stack.owner(),
            segment_owners: self.stack.owners(),
            dims: param.dims().to_vec(),
            require_grad: param.is_require_grad(),
        });
    }
}

/// Every float parameter of `module`, in visiting order.
pub(crate) fn list_params<M: Module>(module: &M) -> Vec<ParamInfo> {
    let mut lister = Lister {
        stack: Stack::default(),
        params: Vec::new(),
    };
    module.visit(&mut lister);
    lister.params
}

struct Reader<'a> {
    stack: Stack,
    wanted: &'a BTreeMap<String, ()>,
    values: BTreeMap<String, TensorData>,
    error: Option<LoraError>,
}

impl ModuleVisitor for Reader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.stack.path();
        if self.error.is_some() || !self.wanted.contains_key(&path) {
            return;
        }
        match param.val().try_into_data() {
            Ok(data) => {
                self.values.insert(path, data);
            }
            Err(e) => {
                self.error = Some(LoraError::Readback {
                    key: path,
                    message: format!("{e:?}"),
                })
            }
        }
    }
}

/// The values of the parameters at `paths` (burn layout, their own dtype).
pub(crate) fn read_params<M: Module>(
    module: &M,
    paths: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, TensorData>, LoraError> {
    let wanted: BTreeMap<String, ()> = paths.into_iter().map(|p| (p, ())).collect();
    let mut reader = Reader {
        stack: Stack::default(),
        wanted: &wanted,
        values: BTreeMap::new(),
        error: None,
    };
    module.visit(&mut reader);
    match reader.error {
        Some(e) => Err(e),
        None => Ok(reader.values),
    }
}

struct Replacer {
    stack: Stack,
    values: BTreeMap<String, TensorData>,
}

impl ModuleMapper for Replacer {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(data) = self.values.remove(&self.stack.path()) else {
            return param;
        };
        // Same id, same trainability: only the value changes.
        param.map(|old| {
            let tensor = Tensor::<D>::from_data(data, (&old.device(), old.dtype()));
            let require_grad = old.is_require_grad();
            tensor.set_require_grad(require_grad)
        })
    }
}

/// Replaces the parameters at the given paths by the given values (burn layout, already checked
/// against [`list_params`]: same rank and shape). Values are converted to each parameter's dtype
/// and device; parameter ids and trainability are kept.
pub(crate) fn replace_params<M: Module>(module: M, values: BTreeMap<String, TensorData>) -> M {
    let mut replacer = Replacer {
        stack: Stack::default(),
        values,
    };
    module.map(&mut replacer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Net {
        layers: Vec<Linear>,
        head: Linear,
    }

    #[derive(Module, Debug)]
    enum Either {
        Left(Linear),
        #[allow(dead_code)]
        Right(Linear),
    }

    #[derive(Module, Debug)]
    struct WithEnum {
        fc: Either,
    }

    #[test]
    fn enum_variants_are_not_path_segments() {
        let net = WithEnum {
            fc: Either::Left(LinearConfig::new(2, 3).init(&Device::flex())),
        };
        let params = list_params(&net);
        assert_eq!(params[0].path, "fc.weight");
        assert_eq!(
            params[0].segment_owners,
            ["Struct:WithEnum", "Struct:Linear"]
        );
    }

    #[test]
    fn paths_owners_and_replacement() {
        let device = Device::flex();
        let net = Net {
            layers: vec![LinearConfig::new(2, 3).init(&device)],
            head: LinearConfig::new(3, 1).with_bias(false).init(&device),
        };
        let params = list_params(&net);
        let paths: Vec<_> = params.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["layers.0.weight", "layers.0.bias", "head.weight"]);
        assert!(params.iter().all(|p| p.owner == "Struct:Linear"));
        assert_eq!(params[0].dims, [2, 3]);

        let new = TensorData::new(vec![1f32, 2., 3.], [3, 1]);
        let id = net.head.weight.id;
        let net = replace_params(net, BTreeMap::from([("head.weight".into(), new.clone())]));
        assert_eq!(net.head.weight.id, id);
        let read = read_params(&net, ["head.weight".to_string()]).unwrap();
        assert_eq!(read["head.weight"], new);
    }
}
