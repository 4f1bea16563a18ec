//! The trainer's numerics against the real Python packages (torch 2.15, transformers 5.24).
//!
//! Reference values were recorded by `tests/fixtures/infra/make_reference.py`; regenerate with
//! `python3 crates/trainer/tests/fixtures/infra/make_reference.py` (CPU, seconds). The tests
//! need no Python.
//!
//! - AdamW trajectories match `torch.optim.AdamW` to 1e-6 relative (f32);
//! - learning rates match `get_cosine_schedule_with_warmup` + `LambdaLR` to 1e-12;
//! - `clip_grad_norm_` norms and clipped gradients match to 1e-6 relative;
//! - `trainer_state.json` is byte-equal to what `TrainerState.save_to_json` writes, and the
//!   `learning_rate` / `epoch` a real `Trainer` run logged are reproduced.

use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Tensor, TensorData};
use serde_json::Value;
use trainer::clip;
use trainer::optim::{AdamW, AdamWConfig, DecayGroup};
use trainer::schedule::{self, CosineSchedule, HfVersion};
use trainer::state::{PyValue, TrainerState, epoch_progress};

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/infra")
        .join(name)
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture present");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn device() -> Device {
    Device::flex()
}

/// A tensor of any rank up to 3, flattened to rank 1 plus its shape: the optimizer is called with
/// the real rank below so the reshapes inside are exercised.
#[derive(Clone)]
enum AnyTensor {
    R1(Tensor<1>),
    R2(Tensor<2>),
    R3(Tensor<3>),
}

impl AnyTensor {
    fn new(values: Vec<f32>, shape: &[usize]) -> Self {
        let dev = device();
        let data = TensorData::new(values, shape.to_vec());
        match shape.len() {
            1 => AnyTensor::R1(Tensor::from_data(data, (&dev, DType::F32))),
            2 => AnyTensor::R2(Tensor::from_data(data, (&dev, DType::F32))),
            3 => AnyTensor::R3(Tensor::from_data(data, (&dev, DType::F32))),
            n => panic!("rank {n} not used in fixtures"),
        }
    }

    fn values(&self) -> Vec<f32> {
        let data = match self {
            AnyTensor::R1(t) => t.clone().into_data(),
            AnyTensor::R2(t) => t.clone().into_data(),
            AnyTensor::R3(t) => t.clone().into_data(),
        };
        data.try_into_vec::<f32>().unwrap()
    }

    fn step(
        &self,
        opt: &mut AdamW,
        name: &str,
        grad: &AnyTensor,
        lr: f64,
        group: DecayGroup,
    ) -> AnyTensor {
        match (self, grad) {
            (AnyTensor::R1(p), AnyTensor::R1(g)) => AnyTensor::R1(
                opt.step_param(name, p.clone(), g.clone(), lr, group)
                    .unwrap(),
            ),
            (AnyTensor::R2(p), AnyTensor::R2(g)) => AnyTensor::R2(
                opt.step_param(name, p.clone(), g.clone(), lr, group)
                    .unwrap(),
            ),
            (AnyTensor::R3(p), AnyTensor::R3(g)) => AnyTensor::R3(
                opt.step_param(name, p.clone(), g.clone(), lr, group)
                    .unwrap(),
            ),
            _ => panic!("rank mismatch"),
        }
    }
}

/// Largest relative difference, with differences below `floor` (absolute) ignored.
#[track_caller]
fn assert_close(got: &[f32], want: &[f32], rel: f64, floor: f64, what: &str) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g as f64, w as f64);
        let diff = (g - w).abs();
        if diff <= floor {
            continue;
        }
        let r = diff / w.abs().max(f64::MIN_POSITIVE);
        worst = worst.max(r);
        assert!(
            r <= rel,
            "{what}[{i}]: got {g:e}, torch {w:e} (relative {r:e})"
        );
    }
    worst
}

struct Case {
    config: AdamWConfig,
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    groups: Vec<DecayGroup>,
    initial: Vec<Vec<f32>>,
    steps: Vec<Value>,
    schedule: CosineSchedule,
    raw: Value,
}

fn load_case(case: &Value) -> Case {
    let params = case["params"].as_array().unwrap();
    let betas = f32s(&case["betas"]);
    let config = AdamWConfig {
        beta1: case["betas"][0].as_f64().unwrap(),
        beta2: case["betas"][1].as_f64().unwrap(),
        eps: case["eps"].as_f64().unwrap(),
        weight_decay: case["weight_decay"].as_f64().unwrap(),
    };
    assert_eq!(betas.len(), 2);
    Case {
        config,
        names: params
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect(),
        shapes: params.iter().map(|p| usizes(&p["shape"])).collect(),
        groups: params
            .iter()
            .map(|p| {
                let group = if p["decay"].as_bool().unwrap() {
                    DecayGroup::Decay
                } else {
                    DecayGroup::NoDecay
                };
                // The fixture's grouping is VILA's rule applied to these names.
                let name = p["name"].as_str().unwrap();
                assert_eq!(
                    DecayGroup::for_parameter(name, name.contains("layernorm")),
                    group,
                    "{name}"
                );
                group
            })
            .collect(),
        initial: params.iter().map(|p| f32s(&p["initial"])).collect(),
        steps: case["steps"].as_array().unwrap().clone(),
        schedule: CosineSchedule::new(
            case["lr"].as_f64().unwrap(),
            case["warmup"].as_u64().unwrap(),
            case["total"].as_u64().unwrap(),
        ),
        raw: case.clone(),
    }
}

/// Runs steps `range` of a case from `params`, checking every step against torch.
fn run_steps(
    case: &Case,
    opt: &mut AdamW,
    params: &mut [AnyTensor],
    range: std::ops::Range<usize>,
) -> f64 {
    let mut worst = 0.0f64;
    for k in range {
        let step = &case.steps[k];
        let lr = step["lr"].as_f64().unwrap();
        // The lr torch used is the schedule's lr for step k.
        let ours = case.schedule.lr_at(k as u64);
        assert!(
            (ours - lr).abs() <= 1e-12 * lr.abs(),
            "lr at step {k}: {ours} vs {lr}"
        );
        for (i, name) in case.names.iter().enumerate() {
            let grad = AnyTensor::new(f32s(&step["grads"][name]), &case.shapes[i]);
            params[i] = params[i].step(opt, name, &grad, ours, case.groups[i]);
            let want = f32s(&step["params"][name]);
            worst = worst.max(assert_close(
                &params[i].values(),
                &want,
                1e-6,
                1e-12,
                &format!("{} step {k} {name}", case.raw["name"]),
            ));
        }
    }
    worst
}

#[test]
fn adamw_matches_torch() {
    let fixture = fixture("adamw.json");
    for raw in fixture["cases"].as_array().unwrap() {
        let case = load_case(raw);
        let mut opt = AdamW::new(case.config).unwrap();
        let mut params: Vec<AnyTensor> = case
            .initial
            .iter()
            .zip(&case.shapes)
            .map(|(v, s)| AnyTensor::new(v.clone(), s))
            .collect();
        let worst = run_steps(&case, &mut opt, &mut params, 0..case.steps.len());
        eprintln!(
            "{}: worst relative difference to torch {worst:e}",
            raw["name"]
        );

        // Final optimizer state, as torch's `optimizer.state[p]`.
        let state = opt.to_named_tensors().unwrap();
        for name in &case.names {
            let torch = &raw["final_state"][name];
            let get = |suffix: &str| {
                state
                    .iter()
                    .find(|t| t.name == format!("{name}.{suffix}"))
                    .unwrap_or_else(|| panic!("{name}.{suffix} missing"))
            };
            assert_close(
                &get("exp_avg").values,
                &f32s(&torch["exp_avg"]),
                1e-6,
                1e-12,
                "exp_avg",
            );
            assert_close(
                &get("exp_avg_sq").values,
                &f32s(&torch["exp_avg_sq"]),
                1e-6,
                1e-18,
                "exp_avg_sq",
            );
            assert_eq!(
                get("step").values,
                vec![torch["step"].as_f64().unwrap() as f32]
            );
            assert_eq!(
                get("exp_avg").shape,
                case.shapes[case.names.iter().position(|n| n == name).unwrap()]
            );
        }
    }
}

#[test]
fn adamw_resume_from_saved_state_is_bit_exact() {
    let fixture = fixture("adamw.json");
    let case = load_case(&fixture["cases"][0]);
    let fresh = |case: &Case| -> Vec<AnyTensor> {
        case.initial
            .iter()
            .zip(&case.shapes)
            .map(|(v, s)| AnyTensor::new(v.clone(), s))
            .collect()
    };
    let n = case.steps.len();

    let mut opt = AdamW::new(case.config).unwrap();
    let mut straight = fresh(&case);
    run_steps(&case, &mut opt, &mut straight, 0..n);

    let mut opt = AdamW::new(case.config).unwrap();
    let mut resumed = fresh(&case);
    run_steps(&case, &mut opt, &mut resumed, 0..3);
    let bytes = opt.to_safetensors().unwrap();
    // The parameters travel through the same exact f32 representation.
    let saved: Vec<(Vec<f32>, Vec<usize>)> = resumed
        .iter()
        .map(|p| p.values())
        .zip(case.shapes.clone())
        .collect();
    drop(opt);
    let mut opt = AdamW::from_safetensors(
        &bytes,
        case.config,
        &device(),
        Path::new("optimizer.safetensors"),
    )
    .unwrap();
    assert_eq!(opt.param_step(&case.names[0]), 3);
    let mut resumed: Vec<AnyTensor> = saved
        .iter()
        .map(|(v, s)| AnyTensor::new(v.clone(), s))
        .collect();
    run_steps(&case, &mut opt, &mut resumed, 3..n);

    for (a, b) in straight.iter().zip(&resumed) {
        let a: Vec<u32> = a.values().iter().map(|v| v.to_bits()).collect();
        let b: Vec<u32> = b.values().iter().map(|v| v.to_bits()).collect();
        assert_eq!(a, b);
    }
    // Saving again gives the same bytes as an uninterrupted run's state.
    let mut again = AdamW::new(case.config).unwrap();
    let mut params = fresh(&case);
    run_steps(&case, &mut again, &mut params, 0..n);
    assert_eq!(
        again.to_safetensors().unwrap(),
        opt.to_safetensors().unwrap()
    );
}

#[test]
fn cosine_schedule_matches_hf() {
    let fixture = fixture("schedule.json");
    // serde_json (without its `float_roundtrip` feature) may misround long decimals by an ulp,
    // so the learning rates are read with the crate's exact Python-JSON parser.
    let text = std::fs::read_to_string(fixture_path("schedule.json")).unwrap();
    let PyValue::Dict(exact_fixture) = PyValue::parse(&text).unwrap() else {
        panic!()
    };
    let PyValue::List(schedules) = &exact_fixture["schedules"] else {
        panic!()
    };
    let mut bit_equal = 0usize;
    let mut total = 0usize;
    for s in schedules {
        let PyValue::Dict(s) = s else { panic!() };
        let int = |k: &str| match s[k] {
            PyValue::Int(i) => i as u64,
            _ => panic!("{k}"),
        };
        let schedule =
            CosineSchedule::new(s["base_lr"].as_f64().unwrap(), int("warmup"), int("total"));
        let PyValue::List(lrs) = &s["lrs"] else {
            panic!()
        };
        for (k, want) in lrs.iter().enumerate() {
            let want = want.as_f64().unwrap();
            let got = schedule.lr_at(k as u64);
            assert!(
                (got - want).abs() <= 1e-12 * want.abs(),
                "warmup {} total {} step {k}: {got:e} vs HF {want:e}",
                int("warmup"),
                int("total")
            );
            bit_equal += usize::from(got.to_bits() == want.to_bits());
            total += 1;
        }
    }
    assert_eq!(bit_equal, total, "every learning rate is bit-equal to HF's");

    for w in fixture["warmup_steps"].as_array().unwrap() {
        let (ratio, steps) = (w["ratio"].as_f64().unwrap(), w["total"].as_u64().unwrap());
        assert_eq!(
            schedule::warmup_steps(ratio, steps),
            w["ceil_total_times_ratio"].as_u64().unwrap(),
            "ratio {ratio} total {steps}"
        );
        if ratio < 1.0 {
            assert_eq!(
                schedule::warmup_steps(ratio, steps),
                w["hf5_get_warmup_steps"].as_u64().unwrap()
            );
        }
    }

    for m in fixture["max_steps"].as_array().unwrap() {
        let len = m["len_dataloader"].as_u64().unwrap();
        let gas = m["gas"].as_u64().unwrap();
        let epochs = m["epochs"].as_f64().unwrap();
        let arg = m["max_steps_arg"].as_i64().unwrap();
        let max_override = u64::try_from(arg).ok().filter(|&s| s > 0);
        assert_eq!(
            schedule::num_update_steps_per_epoch(len, gas, HfVersion::V5),
            m["num_update_steps_per_epoch"].as_u64().unwrap()
        );
        assert_eq!(
            schedule::max_steps(len, gas, epochs, max_override, HfVersion::V5),
            m["max_steps"].as_u64().unwrap(),
            "{m}"
        );
        assert_eq!(
            schedule::num_update_steps_per_epoch(len, gas, HfVersion::V4_46),
            m["v4_46_num_update_steps_per_epoch"].as_u64().unwrap()
        );
        assert_eq!(
            schedule::max_steps(len, gas, epochs, max_override, HfVersion::V4_46),
            m["v4_46_max_steps"].as_u64().unwrap(),
            "{m}"
        );
    }
}

fn formula_grad(n: usize, mult: u64, offset: u64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| ((((i * mult + offset) % 1000) as f64 - 500.0) / 1000.0) as f32)
        .collect()
}

#[test]
fn clip_grad_norm_matches_torch() {
    let fixture = fixture("clip.json");
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let max_norm = case["max_norm"].as_f64().unwrap_or(f64::INFINITY);
        let grads: Vec<AnyTensor> = if let Some(formula) = case.get("formula") {
            formula
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    let f = usizes(f);
                    let values = formula_grad(f[0], f[1] as u64, f[2] as u64);
                    AnyTensor::new(values, &[f[0]])
                })
                .collect()
        } else {
            case["grads"]
                .as_array()
                .unwrap()
                .iter()
                .zip(case["shapes"].as_array().unwrap())
                .map(|(g, s)| AnyTensor::new(f32s(g), &usizes(s)))
                .collect()
        };
        let norms = grads
            .iter()
            .map(|g| match g {
                AnyTensor::R1(t) => clip::tensor_norm(t),
                AnyTensor::R2(t) => clip::tensor_norm(t),
                AnyTensor::R3(t) => clip::tensor_norm(t),
            })
            .collect();
        let total = clip::total_norm(norms).unwrap();
        let total_value = total.clone().into_scalar::<f32>();
        let want_total = case["total_norm"].as_f64().unwrap() as f32;
        assert_close(
            &[total_value],
            &[want_total],
            1e-6,
            0.0,
            &format!("{name} total_norm"),
        );
        let clipped: Vec<Vec<f32>> = match clip::clip_coefficient(&total, max_norm) {
            Some(coef) => grads
                .iter()
                .map(|g| match g {
                    AnyTensor::R1(t) => clip::scale_gradient(t.clone(), &coef).into_data(),
                    AnyTensor::R2(t) => clip::scale_gradient(t.clone(), &coef).into_data(),
                    AnyTensor::R3(t) => clip::scale_gradient(t.clone(), &coef).into_data(),
                })
                .map(|d| d.try_into_vec::<f32>().unwrap())
                .collect(),
            None => grads.iter().map(AnyTensor::values).collect(),
        };
        if let Some(want) = case.get("clipped") {
            for (i, (got, want)) in clipped.iter().zip(want.as_array().unwrap()).enumerate() {
                assert_close(got, &f32s(want), 1e-6, 1e-12, &format!("{name} grad {i}"));
            }
        } else {
            for (i, got) in clipped.iter().enumerate() {
                let first = case["clipped_first"][i].as_f64().unwrap() as f32;
                assert_close(
                    &got[..1],
                    &[first],
                    1e-6,
                    0.0,
                    &format!("{name} grad {i} first"),
                );
                let sum: f64 = got.iter().map(|&v| v as f64).sum();
                let want_sum = case["clipped_sum"][i].as_f64().unwrap();
                assert!(
                    (sum - want_sum).abs() <= 1e-6 * want_sum.abs().max(1.0),
                    "{name} grad {i} sum"
                );
            }
        }
    }
    // The one-rank convenience gives the same norm.
    let mut grads = vec![Tensor::<1>::from_data(
        TensorData::new(formula_grad(4096, 7919, 13), [4096]),
        (&device(), DType::F32),
    )];
    let outcome = clip::clip_grad_norm(&mut grads, 1.0);
    assert!(outcome.coefficient < 1.0);
}

#[test]
fn trainer_state_json_is_byte_equal_to_hf() {
    for name in [
        "trainer_state_constructed.json",
        "trainer_state_hf_run.json",
    ] {
        let path = fixture_path(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let state = TrainerState::load(&path).unwrap();
        assert_eq!(state.to_json(), text, "{name}");
    }

    // Built from scratch, the constructed fixture comes out identical.
    let mut state = TrainerState::new(4, 1, 2, 1, 1);
    state.epoch = 0.5;
    state.global_step = 2;
    state.total_flos = 12.0;
    state.log_history.push(trainer::state::LogEntry::train_step(
        1,
        0.25,
        2.5,
        0.0,
        Some(1.2345678806304932),
    ));
    state.log_history.push(trainer::state::LogEntry::train_step(
        2,
        0.5,
        2.25,
        1e-05,
        Some(0.5),
    ));
    state.set_control_for_save(false);
    let want = std::fs::read_to_string(fixture_path("trainer_state_constructed.json")).unwrap();
    assert_eq!(state.to_json(), want);
}

#[test]
fn logged_learning_rate_and_epoch_match_a_real_hf_run() {
    let run = fixture("hf_run.json");
    let settings = &run["settings"];
    let state = TrainerState::load(&fixture_path("trainer_state_hf_run.json")).unwrap();
    let gas = settings["gradient_accumulation_steps"].as_u64().unwrap();
    let n_batches = settings["n_samples"].as_u64().unwrap()
        / settings["per_device_train_batch_size"].as_u64().unwrap();
    let max_steps = schedule::max_steps(
        n_batches,
        gas,
        settings["num_train_epochs"].as_f64().unwrap(),
        None,
        HfVersion::V5,
    );
    assert_eq!(max_steps, state.max_steps);
    let schedule = CosineSchedule::from_warmup_ratio(
        settings["learning_rate"].as_f64().unwrap(),
        settings["warmup_ratio"].as_f64().unwrap(),
        max_steps,
    );
    assert_eq!(state.log_history.len() as u64, max_steps);
    for (k, entry) in state.log_history.iter().enumerate() {
        let k = k as u64;
        assert_eq!(entry.step, k + 1);
        assert_eq!(
            entry.learning_rate,
            Some(schedule.logged_lr(k, HfVersion::V5)),
            "step {k}"
        );
        assert_eq!(
            entry.epoch,
            Some(epoch_progress(0, (k + 1) * gas, n_batches)),
            "step {k}"
        );
        assert!(entry.loss.is_some() && entry.grad_norm.is_some());
    }
    // With warmup the first logged lr is 0 (the first optimizer step uses lr 0).
    assert_eq!(state.log_history[0].learning_rate, Some(0.0));
}
