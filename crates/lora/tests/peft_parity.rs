//! PEFT-saved adapters loaded into `LoraLinear`s over the same base weights reproduce PEFT's
//! outputs, merged outputs and gradients; only the adapters train; saving gives PEFT's files.
//! Reference values: `fixtures/make_peft.py`.

mod common;

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Gradients;
use burn::tensor::{Device, Tensor, TensorData};
use common::{LINEARS, Lin, Mlp, assert_close, fixtures, read, tensor};
use lora::{ModuleInfo, PeftAdapter, TargetSelector, lora_a_key, lora_b_key};

/// The model with `case`'s adapter on the modules its config selects, as a trainer would build
/// it; also returns the config's selection.
fn adapted(case: &str, device: &Device, dropout: Option<f64>) -> (Mlp, Vec<String>) {
    let mut adapter = PeftAdapter::load(&fixtures().join(case)).unwrap();
    if let Some(p) = dropout {
        adapter.config.lora_dropout = p;
    }
    let selector = TargetSelector::from_config(&adapter.config).unwrap();
    let modules: Vec<ModuleInfo> = LINEARS.iter().map(|p| ModuleInfo::linear(*p)).collect();
    let selected = selector.select(&modules).unwrap();
    let model = Mlp::build(device, |path, base| {
        Ok(if selected.iter().any(|s| s == path) {
            Lin::Lora(adapter.wrap(path, base)?)
        } else {
            // As `get_peft_model`, everything but the adapters is frozen.
            Lin::Plain(base.no_grad())
        })
    })
    .unwrap();
    adapter.finish().unwrap();
    (model, selected)
}

fn outputs_match(case: &str, expected_modules: &[&str]) {
    let device = Device::flex();
    let io = read(&fixtures().join(case).join("io.safetensors"));
    let x: Tensor<3> = tensor(&io["x"], &device);
    let (model, selected) = adapted(case, &device, None);
    assert_eq!(selected, expected_modules);

    let y_base = Mlp::plain(&device).forward(x.clone());
    assert_close(y_base.into_data(), &io["y_base"], 1e-5, 1e-6, "y_base");
    let y = model.forward(x.clone());
    assert_close(y.clone().into_data(), &io["y_lora"], 1e-5, 1e-6, "y_lora");

    let merged = model.merge();
    let y_merged = merged.forward(x);
    assert_close(
        y_merged.clone().into_data(),
        &io["y_merged"],
        1e-5,
        1e-6,
        "y_merged",
    );
    assert_close(
        y_merged.into_data(),
        &y.into_data(),
        1e-5,
        1e-6,
        "merged vs unmerged",
    );
}

#[test]
fn vanilla_adapter_matches_peft_unmerged_and_merged() {
    outputs_match(
        "vanilla",
        &[
            "layers.0.fc1",
            "layers.0.fc2",
            "layers.1.fc1",
            "layers.1.fc2",
        ],
    );
}

#[test]
fn regex_exclude_rslora_and_patterns_match_peft() {
    // target_modules regex, exclude_modules ["layers.0.fc2"], use_rslora, rank_pattern
    // {"head": 2}, alpha_pattern {"layers.1.fc2": 3}.
    outputs_match(
        "patterns",
        &["layers.0.fc1", "layers.1.fc1", "layers.1.fc2", "head"],
    );
    let adapter = PeftAdapter::load(&fixtures().join("patterns")).unwrap();
    assert_eq!(adapter.modules["head"].lora_a.shape().as_slice(), &[2, 8]);
    let (model, _) = adapted("patterns", &Device::flex(), None);
    let scaling = |p: &str| model.lin(p).lora().unwrap().scaling;
    assert_eq!(scaling("head"), 6.0 / 2f64.sqrt());
    assert_eq!(scaling("layers.1.fc2"), 3.0 / 2.0);
    assert_eq!(scaling("layers.0.fc1"), 6.0 / 2.0);
}

/// `loss = sum(y * g)` on the autodiff device, dropout off (PEFT ran in eval mode).
fn loss(model: &Mlp, io: &BTreeMap<String, TensorData>, device: &Device) -> Tensor<1> {
    let x: Tensor<3> = tensor(&io["x"], device);
    let g: Tensor<3> = tensor(&io["g"], device);
    (model.forward(x) * g).sum()
}

#[test]
fn gradients_match_peft_and_reach_only_the_adapters() {
    let device = Device::flex().autodiff();
    let io = read(&fixtures().join("vanilla/io.safetensors"));
    let (model, selected) = adapted("vanilla", &device, Some(0.0));
    let grads = loss(&model, &io, &device).backward();
    for path in &selected {
        let layer = model.lin(path).lora().unwrap();
        let a = layer.lora_A.weight.grad(&grads).unwrap().transpose();
        let b = layer.lora_B.weight.grad(&grads).unwrap().transpose();
        let want_a = &io[&format!("grad.{}", lora_a_key(path))];
        let want_b = &io[&format!("grad.{}", lora_b_key(path))];
        assert_close(a.into_data(), want_a, 1e-5, 1e-6, &lora_a_key(path));
        assert_close(b.into_data(), want_b, 1e-5, 1e-6, &lora_b_key(path));
        assert!(
            layer.base.weight.grad(&grads).is_none(),
            "{path} base weight"
        );
        assert!(
            layer
                .base
                .bias
                .as_ref()
                .is_none_or(|b| b.grad(&grads).is_none())
        );
    }
    // PEFT records a gradient for exactly the adapter factors.
    let recorded: Vec<&String> = io.keys().filter(|k| k.starts_with("grad.")).collect();
    assert_eq!(recorded.len(), 2 * selected.len());
    if let Lin::Plain(head) = &model.head {
        assert!(head.weight.grad(&grads).is_none());
    }
}

/// Plain SGD over whatever autodiff tracks.
struct Sgd<'a> {
    grads: &'a Gradients,
    lr: f64,
}

impl ModuleMapper for Sgd<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(grad) = param.grad(self.grads) else {
            return param;
        };
        let lr = self.lr;
        param.map(|t| {
            let updated = t.inner() - grad.mul_scalar(lr);
            Tensor::from_inner(updated).require_grad()
        })
    }
}

fn frozen_values(model: &Mlp) -> Vec<TensorData> {
    LINEARS
        .iter()
        .map(|p| match model.lin(p) {
            Lin::Plain(l) => l.weight.val().into_data(),
            Lin::Lora(l) => l.base.weight.val().into_data(),
        })
        .collect()
}

#[test]
fn sgd_steps_change_only_the_adapters() {
    let device = Device::flex().autodiff();
    let io = read(&fixtures().join("vanilla/io.safetensors"));
    let (mut model, selected) = adapted("vanilla", &device, Some(0.0));
    let frozen = frozen_values(&model);
    let a0 = model
        .lin("layers.0.fc1")
        .lora()
        .unwrap()
        .lora_A
        .weight
        .val()
        .into_data();
    let first = loss(&model, &io, &device).into_scalar::<f32>();
    for _ in 0..3 {
        let grads = loss(&model, &io, &device).backward();
        model = model.map(&mut Sgd {
            grads: &grads,
            lr: 1e-3,
        });
    }
    let last = loss(&model, &io, &device).into_scalar::<f32>();
    assert!(last < first, "loss {first} -> {last}");
    assert_eq!(frozen_values(&model), frozen, "a frozen weight moved");
    let a1 = model
        .lin("layers.0.fc1")
        .lora()
        .unwrap()
        .lora_A
        .weight
        .val()
        .into_data();
    assert_ne!(a0, a1);
    // Trainability survives the steps.
    for path in &selected {
        let layer = model.lin(path).lora().unwrap();
        assert!(layer.lora_A.weight.is_require_grad() && layer.lora_B.weight.is_require_grad());
        assert!(!layer.base.weight.is_require_grad());
    }
}

#[test]
fn saving_a_loaded_adapter_reproduces_peft_files_byte_for_byte() {
    for case in ["vanilla", "patterns"] {
        let device = Device::flex();
        let dir = fixtures().join(case);
        let adapter = PeftAdapter::load(&dir).unwrap();
        let (model, _) = adapted(case, &device, None);
        // Collected back from the model: the layers hold exactly what was loaded.
        let collected = PeftAdapter::from_module(adapter.config.clone(), &model).unwrap();
        assert_eq!(collected.modules, adapter.modules);
        let out = tempfile::tempdir().unwrap();
        collected.save(out.path()).unwrap();
        for file in [lora::ADAPTER_WEIGHTS_FILE, lora::ADAPTER_CONFIG_FILE] {
            let ours = std::fs::read(out.path().join(file)).unwrap();
            let peft = std::fs::read(dir.join(file)).unwrap();
            assert!(ours == peft, "{case}/{file} differs from PEFT's");
        }
        let again = PeftAdapter::load(out.path()).unwrap();
        assert_eq!(again.modules, adapter.modules);
        assert_eq!(again.config, adapter.config);
    }
}

#[test]
fn apply_to_loads_into_an_already_wrapped_model() {
    let device = Device::flex();
    let io = read(&fixtures().join("vanilla/io.safetensors"));
    let adapter = PeftAdapter::load(&fixtures().join("vanilla")).unwrap();
    // Fresh adapters (B = 0) on the selected modules, then the weights by path.
    let selector = TargetSelector::from_config(&adapter.config).unwrap();
    let fresh = Mlp::build(&device, |path, base| {
        Ok(if selector.matches(path) {
            Lin::Lora(adapter.linear_config(path)?.with_seed(Some(1)).init(base)?)
        } else {
            Lin::Plain(base)
        })
    })
    .unwrap();
    let x: Tensor<3> = tensor(&io["x"], &device);
    assert_close(
        fresh.forward(x.clone()).into_data(),
        &io["y_base"],
        1e-5,
        1e-6,
        "fresh",
    );
    let ids: Vec<_> = fresh
        .layers
        .iter()
        .map(|b| b.fc1.lora().unwrap().lora_A.weight.id)
        .collect();
    let loaded = adapter.apply_to(fresh).unwrap();
    assert_close(
        loaded.forward(x).into_data(),
        &io["y_lora"],
        1e-5,
        1e-6,
        "applied",
    );
    let after: Vec<_> = loaded
        .layers
        .iter()
        .map(|b| b.fc1.lora().unwrap().lora_A.weight.id)
        .collect();
    assert_eq!(ids, after, "parameter ids are kept");
}

/// A config built in Rust (not read from PEFT) with the vanilla factors: what a trainer saves.
/// `fixtures/rust_saved/` holds these bytes, and `python3 make_peft.py --verify rust_saved`
/// checked that PEFT loads them and reproduces `y_lora`.
#[test]
fn rust_built_adapter_is_stable_and_peft_checked() {
    let peft = PeftAdapter::load(&fixtures().join("vanilla")).unwrap();
    let mut config = lora::AdapterConfig::new(
        4,
        8.0,
        lora::TargetModules::Names(vec!["fc1".into(), "fc2".into()]),
    );
    config.lora_dropout = 0.05;
    let device = Device::flex();
    let mut from_peft = peft.clone();
    let model = Mlp::build(&device, |path, base| {
        Ok(if path == "head" {
            Lin::Plain(base.no_grad())
        } else {
            Lin::Lora(from_peft.wrap(path, base)?)
        })
    })
    .unwrap();
    let adapter = PeftAdapter::from_module(config, &model).unwrap();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rust_saved");
    adapter.save(&out).unwrap();
    let committed = fixtures().join("rust_saved");
    for file in [lora::ADAPTER_WEIGHTS_FILE, lora::ADAPTER_CONFIG_FILE] {
        let ours = std::fs::read(out.join(file)).unwrap();
        let want = std::fs::read(committed.join(file)).unwrap_or_default();
        assert!(
            ours == want,
            "{file} changed; if intended: cp {}/* {} && python3 make_peft.py --verify rust_saved",
            out.display(),
            committed.display()
        );
    }
    // Same tensors as PEFT's own file.
    let ours = common::read(&out.join(lora::ADAPTER_WEIGHTS_FILE));
    let theirs = common::read(&fixtures().join("vanilla").join(lora::ADAPTER_WEIGHTS_FILE));
    assert_eq!(ours, theirs);
}

#[test]
fn lora_param_group_selects_exactly_the_factors() {
    let device = Device::flex().autodiff();
    let (model, selected) = adapted("vanilla", &device, Some(0.0));
    let model = model
        .unfreeze()
        .freeze()
        .unfreeze_group(lora::lora_param_group());
    for path in LINEARS {
        match model.lin(path) {
            Lin::Lora(l) => {
                assert!(l.lora_A.weight.is_require_grad() && l.lora_B.weight.is_require_grad());
                assert!(!l.base.weight.is_require_grad(), "{path}");
            }
            Lin::Plain(l) => assert!(!l.weight.is_require_grad(), "{path}"),
        }
    }
    assert_eq!(selected.len(), 4);
}
