//! The fixture network of `fixtures/make_peft.py` in burn, and fixture readers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Device, Tensor, TensorData};
use lora::{LoraError, LoraLinear};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every tensor of a safetensors fixture, as f32-or-whatever `TensorData`.
pub fn read(path: &Path) -> BTreeMap<String, TensorData> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.iter()
        .map(|(key, view)| {
            let dtype = match view.dtype() {
                safetensors::Dtype::F32 => DType::F32,
                safetensors::Dtype::BF16 => DType::BF16,
                safetensors::Dtype::F16 => DType::F16,
                other => panic!("{other:?}"),
            };
            let data = TensorData::from_bytes_vec(view.data().to_vec(), view.shape(), dtype);
            (key.to_string(), data)
        })
        .collect()
}

pub fn tensor<const D: usize>(data: &TensorData, device: &Device) -> Tensor<D> {
    Tensor::from_data(data.clone(), (device, DType::F32))
}

/// A torch `nn.Linear` from the base checkpoint, as burn's `Linear` (weight transposed).
pub fn base_linear(weights: &BTreeMap<String, TensorData>, name: &str, device: &Device) -> Linear {
    let weight: Tensor<2> = tensor(&weights[&format!("{name}.weight")], device);
    let bias = weights
        .get(&format!("{name}.bias"))
        .map(|b| Param::from_tensor(tensor::<1>(b, device)));
    Linear {
        weight: Param::from_tensor(weight.transpose()),
        bias,
    }
}

/// A linear layer that may or may not carry an adapter. The enum level is not a path segment for
/// the `lora` crate's walks, so paths stay PyTorch's.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Lin {
    Plain(Linear),
    Lora(LoraLinear),
}

impl Lin {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Lin::Plain(l) => l.forward(x),
            Lin::Lora(l) => l.forward(x),
        }
    }

    pub fn lora(&self) -> Option<&LoraLinear> {
        match self {
            Lin::Plain(_) => None,
            Lin::Lora(l) => Some(l),
        }
    }

    pub fn merge(self) -> Self {
        match self {
            Lin::Lora(l) => Lin::Lora(l.merge()),
            plain => plain,
        }
    }
}

#[derive(Module, Debug)]
pub struct Block {
    pub fc1: Lin,
    pub fc2: Lin,
}

/// `make_peft.py::Mlp`: two residual blocks (`h + fc2(relu(fc1(h)))`) and a head.
#[derive(Module, Debug)]
pub struct Mlp {
    pub layers: Vec<Block>,
    pub head: Lin,
}

pub const LINEARS: [&str; 5] = [
    "layers.0.fc1",
    "layers.0.fc2",
    "layers.1.fc1",
    "layers.1.fc2",
    "head",
];

impl Mlp {
    /// The base network, each linear at `path` passed through `wrap`.
    pub fn build(
        device: &Device,
        mut wrap: impl FnMut(&str, Linear) -> Result<Lin, LoraError>,
    ) -> Result<Mlp, LoraError> {
        let weights = read(&fixtures().join("base_model.safetensors"));
        let mut lin = |path: &str| wrap(path, base_linear(&weights, path, device));
        let mut layers = Vec::new();
        for i in 0..2 {
            layers.push(Block {
                fc1: lin(&format!("layers.{i}.fc1"))?,
                fc2: lin(&format!("layers.{i}.fc2"))?,
            });
        }
        Ok(Mlp {
            layers,
            head: lin("head")?,
        })
    }

    pub fn plain(device: &Device) -> Mlp {
        Self::build(device, |_, l| Ok(Lin::Plain(l))).unwrap()
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut h = x;
        for block in &self.layers {
            h = h.clone() + block.fc2.forward(relu(block.fc1.forward(h)));
        }
        self.head.forward(h)
    }

    pub fn merge(self) -> Mlp {
        Mlp {
            layers: self
                .layers
                .into_iter()
                .map(|b| Block {
                    fc1: b.fc1.merge(),
                    fc2: b.fc2.merge(),
                })
                .collect(),
            head: self.head.merge(),
        }
    }

    pub fn lin(&self, path: &str) -> &Lin {
        match path {
            "head" => &self.head,
            _ => {
                let i: usize = path[7..8].parse().unwrap();
                if path.ends_with("fc1") {
                    &self.layers[i].fc1
                } else {
                    &self.layers[i].fc2
                }
            }
        }
    }
}

/// `|a - b| <= rel * |b| + abs` elementwise, with a readable failure.
pub fn assert_close(got: TensorData, expected: &TensorData, rel: f32, abs: f32, what: &str) {
    let got = got.convert_dtype(DType::F32).try_to_vec::<f32>().unwrap();
    let expected = expected
        .clone()
        .convert_dtype(DType::F32)
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(got.len(), expected.len(), "{what}: length");
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert!(
            (g - e).abs() <= rel * e.abs() + abs,
            "{what}[{i}]: got {g}, expected {e}"
        );
    }
}
