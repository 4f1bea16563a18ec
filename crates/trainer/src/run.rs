//! The training run: HF `Trainer` + VILA semantics on one device (rank 0 of world 1; the data
//! side already shards by rank for the two-GPU issue).
//!
//! Per optimizer step: the loader hands the step's micro-batches (VILA's order); each sample is
//! embedded with its images (frozen vision tower + projector), micro-batches run through
//! [`crate::step::forward_backward`] with loss scale `1 / num_items_in_batch` (the global batch's
//! supervised tokens), the adapter gradients accumulate, the global norm is clipped, AdamW steps
//! with the cosine schedule's lr, and every `save_steps` a checkpoint is written atomically.
//! Re-running the same command resumes from the newest complete checkpoint; a finished run
//! (`output_dir/config.json`) is skipped, as VILA's `get_checkpoint_path` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{Bool, DType, Device, Tensor, TensorData};
use lora::{
    ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, NON_LORA_TRAINABLES_FILE, PeftAdapter,
    save_non_lora_trainables,
};
use nvila_model::NvilaModel;
use nvila_model::processor::ImageAspectRatio as ProcessorAspect;
use nvila_model::text::decoder::Qwen2DecoderLayer;
use serde::{Deserialize, Serialize};

use crate::adapter::{self, AdapterInit, TrainProjection};
use crate::checkpoint::{CheckpointFile, CheckpointManager, FileSink, write_file_atomic};
use crate::clip::clip_grad_norm;
use crate::config::{DeviceSpec, ImageAspectRatio, TrainConfig};
use crate::data::{
    BatchGeometry, DataCursor, Loader, LoaderOptions, OpenOptions, PrepareOptions, PreparedSample,
    SamplePreparer, Sampler, TrainingSet,
};
use crate::metrics::{
    METRICS_FILE, MetricsRecord, MetricsWriter, Progress, ProgressMode, log_device_memory,
};
use crate::optim::{AdamW, DecayGroup, OPTIMIZER_FILE};
use crate::plan::{MemoryEstimate, plan_text, safetensors_bytes};
use crate::schedule::{CosineSchedule, HfVersion, max_steps, warmup_steps};
use crate::state::{LogEntry, TRAINER_STATE_NAME, TrainerState};
use crate::step::{IGNORE_INDEX, LlmBatch, forward_backward, mix_seed};
use crate::tuned::{self, Tuned};

/// Data cursor and seeds of a checkpoint.
pub const RUN_STATE_FILE: &str = "trainer_run_state.json";
/// The schedule's state in a checkpoint (HF writes `scheduler.pt`; the schedule is a pure
/// function of the step, recorded here so a resumed run can be checked against it).
pub const SCHEDULER_FILE: &str = "scheduler.json";
/// The loss curve written at the end.
pub const LOSS_CURVE_FILE: &str = "loss_curve.png";
/// HF semantics followed for logged values and step counts.
pub const HF: HfVersion = HfVersion::V5;

/// Options that are not training parameters.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// First adapter values from this PEFT folder instead of PEFT's random init (a parity run,
    /// or continuing from another adapter). Ignored when resuming.
    pub init_adapter: Option<PathBuf>,
    /// Print the plan and stop.
    pub dry_run: bool,
    /// Stop after this many optimizer steps of this process (tests of resume).
    pub stop_after: Option<u64>,
    /// Progress display.
    pub progress: Option<ProgressMode>,
    /// Where checkpoint files are written (default: the file system); tests inject full disks
    /// ([`crate::checkpoint::FailAfter`]) and crashes ([`crate::checkpoint::AbortAfter`]).
    pub checkpoint_sink: Option<Arc<dyn FileSink>>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RunOutcome {
    /// `output_dir/config.json` existed: nothing was trained.
    AlreadyFinished,
    /// `--dry-run`: the plan.
    Planned(String),
    /// Stopped early by `stop_after` at this global step.
    Stopped(u64),
    /// Trained to the end; the final adapter is in `output_dir`.
    Finished {
        /// Global steps done.
        steps: u64,
        /// Loss of each step of this process, in order.
        losses: Vec<f64>,
    },
}

/// What a checkpoint records besides adapter, optimizer and trainer state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunState {
    /// Optimizer steps done.
    pub global_step: u64,
    /// Where the data continues.
    pub cursor: DataCursor,
    /// The run's seed (sampler, padding, dropout streams).
    pub seed: u64,
    /// Total steps and warmup of the schedule.
    pub max_steps: u64,
    /// Warmup steps of the schedule.
    pub warmup_steps: u64,
}

/// A training failure, with what the user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Data.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// Checkpoints.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// Model.
    #[error(transparent)]
    Model(#[from] nvila_model::ModelError),
    /// Adapter.
    #[error(transparent)]
    Lora(#[from] lora::LoraError),
    /// Optimizer.
    #[error(transparent)]
    Optim(#[from] crate::optim::OptimError),
    /// Trainer state.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Metrics.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// Plot.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    /// The loss became NaN or infinite.
    #[error(
        "loss is {loss} at step {step}: stopping (the last complete checkpoint, if any, is intact; \
         lower the learning rate or check the data of this step)"
    )]
    NonFiniteLoss {
        /// 1-based step.
        step: u64,
        /// The value.
        loss: f64,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

fn device_of(cfg: &TrainConfig) -> Result<Device, RunError> {
    match cfg.device.as_slice() {
        [DeviceSpec::Cpu] => Ok(Device::flex().autodiff()),
        [DeviceSpec::Cuda(i)] => cuda(*i),
        more => Err(RunError::Other(format!(
            "{} devices given: this trainer runs on one device for now (two-GPU training is a \
             later issue)",
            more.len()
        ))),
    }
}

fn cuda(i: usize) -> Result<Device, RunError> {
    nvila_model::device::cuda(i)
        .map(|d| d.autodiff())
        .map_err(|e| RunError::Other(format!("--device cuda:{i}: {e}")))
}

fn processor_aspect(cfg: &TrainConfig) -> Result<ProcessorAspect, RunError> {
    match cfg.image_aspect_ratio {
        ImageAspectRatio::Dynamic => Ok(ProcessorAspect::Dynamic),
        ImageAspectRatio::Resize => Ok(ProcessorAspect::Resize),
        other => Err(RunError::Other(format!(
            "image_aspect_ratio {other} is not supported (use dynamic or resize)"
        ))),
    }
}

fn check_supported(cfg: &TrainConfig) -> Result<(), RunError> {
    let refuse = |what: &str| Err(RunError::Other(format!("{what} is not supported yet")));
    if !cfg.lora_enable {
        return refuse("training without LoRA (lora_enable false)");
    }
    if cfg.lora_vt && cfg.tune_vision_tower {
        // VILA's train.py: `if lora_vt: ... elif tune_vision_tower: ...` — LoRA wins.
        return Err(RunError::Other(
            "lora_vt and tune_vision_tower both set: VILA applies only lora_vt (LoRA on a frozen \
             tower); choose one"
                .into(),
        ));
    }
    if !cfg.lora_llm && !cfg.lora_vt {
        return refuse("LoRA without lora_llm or lora_vt (there would be nothing to train)");
    }
    adapter::check_lora_numbers(cfg.lora_r as usize, cfg.lora_alpha as f64, cfg.lora_dropout)?;
    Ok(())
}

/// Splices each sample's images into its embedded tokens and right-pads the micro-batch. The
/// embeddings keep their graph: with a tuned projector or tower, or LoRA on the tower, it leads
/// back to those parameters (otherwise there is none).
fn embed_micro_batch(
    model: &NvilaModel<TrainProjection>,
    samples: &[PreparedSample],
) -> Result<LlmBatch, RunError> {
    let mut rows = Vec::with_capacity(samples.len());
    for s in samples {
        let pixels = (s.pixel_values.n_tiles > 0).then_some(&s.pixel_values);
        let spliced = model.embed_inputs(&s.input_ids, pixels, Some(&s.labels))?;
        let labels = spliced.labels.unwrap_or_default();
        rows.push((spliced.embeds, labels));
    }
    let seq = rows.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    let b = rows.len();
    let mut embeds = Vec::with_capacity(b);
    let mut labels = Vec::with_capacity(b * seq);
    let mut padding = Vec::with_capacity(b * seq);
    for (e, l) in rows {
        let [_, s, h] = e.dims();
        let pad = seq - s;
        let e = if pad > 0 {
            let zeros = Tensor::zeros([1, pad, h], (&e.device(), e.dtype()));
            Tensor::cat(vec![e, zeros], 1)
        } else {
            e
        };
        embeds.push(e);
        labels.extend(l.iter().copied());
        labels.extend(std::iter::repeat_n(IGNORE_INDEX, pad));
        padding.extend(std::iter::repeat_n(false, s));
        padding.extend(std::iter::repeat_n(true, pad));
    }
    let embeds = Tensor::cat(embeds, 0);
    let any_pad = padding.iter().any(|p| *p);
    let key_padding = any_pad.then(|| {
        Tensor::<2, Bool>::from_data(TensorData::new(padding, [b, seq]), &embeds.device())
    });
    Ok(LlmBatch {
        embeds,
        labels,
        key_padding,
    })
}

/// Distinguishes the tower's dropout stream from the LLM layers' (`layer_seed`).
const VISION_STREAM: u64 = 0x5649_5349_4f4e;

/// Seed of the dropout stream of (step, micro-batch): the same in a resumed run.
fn step_seed(seed: u64, step: u64, micro: usize) -> u64 {
    mix_seed(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (micro as u64).rotate_left(32))
}

/// `non_lora_trainables.safetensors` for a checkpoint: the tuned parts' tensors (f32, VILA's
/// keys), or none (VILA writes an empty `non_lora_trainables.bin` when nothing else trains).
fn non_lora_file(
    model: &NvilaModel<TrainProjection>,
    scratch: &Path,
) -> Result<Vec<CheckpointFile>, RunError> {
    let tensors = tuned::non_lora_tensors(model)?;
    written_files(scratch, &[NON_LORA_TRAINABLES_FILE], |dir| {
        Ok(save_non_lora_trainables(
            &dir.join(NON_LORA_TRAINABLES_FILE),
            &tensors,
        )?)
    })
}

/// Bytes of the files a [`PeftAdapter`] writes, for a checkpoint.
fn adapter_files(adapter: &PeftAdapter, scratch: &Path) -> Result<Vec<CheckpointFile>, RunError> {
    written_files(
        scratch,
        &[ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE],
        |dir| Ok(adapter.save(dir)?),
    )
}

/// The files `names` as `write` puts them into the (emptied) folder `scratch`, read back as
/// checkpoint files: the writers' own formats, staged by the checkpoint manager.
fn written_files(
    scratch: &Path,
    names: &[&str],
    write: impl FnOnce(&Path) -> Result<(), RunError>,
) -> Result<Vec<CheckpointFile>, RunError> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch)
        .map_err(|e| RunError::Other(format!("{}: {e}", scratch.display())))?;
    write(scratch)?;
    let mut files = Vec::new();
    for name in names {
        let path = scratch.join(name);
        let bytes = std::fs::read(&path).map_err(|e| {
            RunError::Other(format!("{}: could not read back: {e}", path.display()))
        })?;
        files.push(CheckpointFile::bytes(*name, bytes));
    }
    let _ = std::fs::remove_dir_all(scratch);
    Ok(files)
}

/// Runs (or resumes, or skips) the training `cfg` describes.
pub fn train(cfg: &TrainConfig, opts: &RunOptions) -> Result<RunOutcome, RunError> {
    cfg.validate()?;
    check_supported(cfg)?;
    let out = cfg.output_dir.clone();
    let mut manager = CheckpointManager::new(out.clone(), cfg.save_total_limit);
    if let Some(sink) = &opts.checkpoint_sink {
        manager = manager.with_sink(sink.clone());
    }
    let discovery = manager.discover()?;
    if discovery.finished {
        tracing::info!(
            "{} exists: training already finished; skipping it (as VILA does)",
            out.join("config.json").display()
        );
        return Ok(RunOutcome::AlreadyFinished);
    }
    for rejected in &discovery.rejected {
        tracing::warn!(
            "checkpoint {} is incomplete or corrupt ({}); falling back to the previous one",
            rejected.path.display(),
            rejected.defect
        );
    }

    // Data.
    let world = cfg.world_size() as usize;
    let geometry = BatchGeometry::new(
        world,
        cfg.per_device_train_batch_size as usize,
        cfg.gradient_accumulation_steps as usize,
    )?;
    let set = Arc::new(TrainingSet::open(
        &cfg.registry,
        &cfg.data_mixture,
        &OpenOptions::new(geometry, cfg.seed),
    )?);
    tracing::info!("{}", set.padding());
    let sampler = Sampler::new(&set.sample_lens(), geometry, 0, cfg.seed)?;
    let gas = cfg.gradient_accumulation_steps;
    let total = max_steps(
        sampler.micro_batches_per_epoch(),
        gas,
        cfg.num_train_epochs,
        cfg.max_steps,
        HF,
    );
    let warmup = warmup_steps(cfg.warmup_ratio, total);
    let schedule = CosineSchedule::new(cfg.learning_rate, warmup, total);
    let preparer = Arc::new(SamplePreparer::from_checkpoint(
        &cfg.model_path,
        &PrepareOptions {
            model_max_length: Some(cfg.model_max_length as usize),
            image_aspect_ratio: Some(processor_aspect(cfg)?),
        },
    )?);

    // Model and adapters.
    let device = device_of(cfg)?;
    let dtype = cfg.dtype.to_burn();
    let base = NvilaModel::from_checkpoint_with(
        &cfg.model_path,
        &device,
        Some(dtype),
        Some(preparer.processor().config().clone()),
    )?;
    log_device_memory(&device, "after loading the model", tracing::Level::INFO);
    let targets = adapter::default_targets(&base, cfg.lora_llm, cfg.lora_vt)?;
    let adapter_config = adapter::adapter_config(
        cfg.lora_r as usize,
        cfg.lora_alpha as f64,
        cfg.lora_dropout,
        targets,
        &cfg.model_path.display().to_string(),
    );
    let resume = discovery.resume_from.clone();
    let init = match (&resume, &opts.init_adapter) {
        (Some(ckpt), _) => AdapterInit::Saved(Box::new(PeftAdapter::load(&ckpt.path)?)),
        (None, Some(dir)) => AdapterInit::Saved(Box::new(PeftAdapter::load(dir)?)),
        (None, None) => AdapterInit::Fresh {
            config: &adapter_config,
            seed: cfg.seed,
        },
    };
    let mut model = adapter::attach(base, init)?;
    let parts = Tuned {
        vision_tower: cfg.tune_vision_tower,
        mm_projector: cfg.tune_mm_projector,
    };
    tuned::make_trainable(&mut model, parts);
    if let (true, Some(ckpt)) = (parts.any(), &resume) {
        tuned::load(&mut model, parts, &ckpt.path.join(NON_LORA_TRAINABLES_FILE))?;
    }
    let trainable = adapter::trainable_count(&model) + tuned::trainable_count(&model);
    // Gradients reach the tower and projector only through the LLM's input gradient.
    let before_llm = parts.any() || cfg.lora_vt;

    if opts.dry_run {
        let memory = MemoryEstimate::new(
            cfg,
            &model.llm.config,
            safetensors_bytes(&cfg.model_path),
            trainable,
            cfg.chunks(),
        );
        let text = plan_text(cfg, &set, (total, warmup), trainable, &memory);
        return Ok(RunOutcome::Planned(text));
    }

    // Optimizer and state, fresh or resumed.
    let (mut optim, mut state, start) = match &resume {
        Some(ckpt) => {
            let optim = AdamW::load(
                &ckpt.path.join(OPTIMIZER_FILE),
                cfg.adamw(),
                &device.clone().without_autodiff(),
            )?;
            let state = TrainerState::load(&ckpt.path.join(TRAINER_STATE_NAME))?;
            tracing::info!(
                "resuming from {} (step {} of {total})",
                ckpt.path.display(),
                state.global_step
            );
            let step = state.global_step;
            (optim, state, step)
        }
        None => {
            let state = TrainerState::new(
                total,
                cfg.logging_steps,
                cfg.save_steps,
                cfg.num_train_epochs.ceil() as u64,
                cfg.per_device_train_batch_size,
            );
            (AdamW::new(cfg.adamw())?, state, 0)
        }
    };
    std::fs::create_dir_all(&out)
        .map_err(|e| RunError::Other(format!("{}: {e}", out.display())))?;
    let mut metrics = MetricsWriter::open(&out.join(METRICS_FILE), start)?;
    let progress = Progress::new(
        opts.progress.unwrap_or_else(ProgressMode::detect),
        total,
        start,
        cfg.logging_steps.max(1),
    );
    let mut loader = Loader::new(
        set.clone(),
        preparer.clone(),
        &sampler,
        sampler.cursor_at_step(start),
        LoaderOptions::new(cfg.dataloader_num_workers as usize, geometry, total),
    )?;

    let base_config_path = cfg.model_path.join("config.json");
    let base_config = std::fs::read(&base_config_path)
        .map_err(|e| RunError::Other(format!("{}: {e}", base_config_path.display())))?;
    let started = Instant::now();
    let mut last_record_s = 0.0;
    let mut tokens_seen = 0u64;
    let mut losses = Vec::new();
    let mut step = start;
    while step < total {
        if opts.stop_after.is_some_and(|n| step - start >= n) {
            progress.finish();
            return Ok(RunOutcome::Stopped(step));
        }
        let batch = loader
            .next_step()
            .ok_or_else(|| RunError::Other(format!("the data ran out at step {}", step + 1)))??;
        let n_items = batch.num_supervised_tokens.max(1);
        let scale = 1.0 / n_items as f32;
        let mut grads: BTreeMap<String, Tensor<2>> = BTreeMap::new();
        let mut ce_sum = 0.0;
        let step_tokens: usize = batch
            .micro_batches
            .iter()
            .flat_map(|m| m.samples.iter())
            .map(|s| s.expanded_len)
            .sum();
        for (micro, mb) in batch.micro_batches.iter().enumerate() {
            if cfg.lora_vt {
                // The tower's LoRA dropout draws from its own seeded stream (exact resume).
                device.seed(mix_seed(step_seed(cfg.seed, step, micro) ^ VISION_STREAM));
            }
            let llm_batch = embed_micro_batch(&model, &mb.samples)?;
            // Gradients accumulate by PEFT key over the micro-batches of the step.
            let mut collect = |i: usize,
                               layer: &Qwen2DecoderLayer<TrainProjection>,
                               g: &mut burn::tensor::Gradients| {
                for t in adapter::layer_trainables(i, layer) {
                    if let Some(gr) = t.value.grad_remove(g) {
                        let gr = gr.cast(DType::F32);
                        let sum = match grads.remove(&t.key) {
                            Some(prev) => prev + gr,
                            None => gr,
                        };
                        grads.insert(t.key, sum);
                    }
                }
            };
            let (loss, input_grad) = forward_backward(
                &model.llm,
                &llm_batch,
                scale,
                cfg.chunks(),
                step_seed(cfg.seed, step, micro),
                &mut collect,
            )?;
            ce_sum += loss.ce_sum;
            log_device_memory(&device, "after a micro-batch", tracing::Level::DEBUG);
            if before_llm {
                // The splice keeps the graph of the tuned parts and the tower's adapters:
                // Σ embeds ⊙ ∂loss/∂embeds backpropagates the LLM's input gradient into them.
                let surrogate = (llm_batch.embeds * input_grad.autodiff()).sum();
                let mut g = surrogate.backward();
                let mut taken = adapter::take_vision_grads(&model.vision_tower, &mut g);
                taken.extend(tuned::take_grads(&model, &mut g));
                for (key, gr) in taken {
                    let sum = match grads.remove(&key) {
                        Some(prev) => prev + gr,
                        None => gr,
                    };
                    grads.insert(key, sum);
                }
            }
        }
        let loss = ce_sum / n_items as f64;
        if !loss.is_finite() {
            return Err(RunError::NonFiniteLoss {
                step: step + 1,
                loss,
            });
        }

        // Gradients by PEFT key, in VILA's `named_parameters()` order (LoRA factors of the
        // LLM, then the tuned tower's and projector's tensors): f32 values without a graph and
        // their decay group.
        let lora_params = adapter::trainables(&model.llm)
            .into_iter()
            .chain(adapter::vision_trainables(&model.vision_tower));
        let mut trainables: Vec<(String, Tensor<2>, DecayGroup)> = lora_params
            .map(|t| (t.key, t.value.inner(), DecayGroup::Decay))
            .collect();
        trainables.extend(tuned::trainables(&model));
        let mut grad_list = Vec::with_capacity(trainables.len());
        for (key, value, _) in &trainables {
            let g = grads
                .remove(key)
                .unwrap_or_else(|| Tensor::zeros(value.dims(), (&value.device(), DType::F32)));
            grad_list.push(g);
        }
        let clip = clip_grad_norm(&mut grad_list, cfg.max_grad_norm);
        let lr = schedule.lr_at(step);
        let mut new = BTreeMap::new();
        for ((key, value, group), g) in trainables.into_iter().zip(grad_list) {
            let value = optim.step_param(&key, value, g, lr, group)?;
            new.insert(key, value);
        }
        model = adapter::update(model, &mut new);
        if parts.any() {
            tuned::update(&mut model, &mut new);
        }
        step += 1;
        losses.push(loss);
        tokens_seen += step_tokens as u64;

        // Logs.
        let steps_per_epoch = sampler.steps_per_epoch().max(1);
        let epoch = step as f64 / steps_per_epoch as f64;
        let logged_lr = schedule.logged_lr(step - 1, HF);
        state.global_step = step;
        state.epoch = epoch;
        state.num_input_tokens_seen += step_tokens as u64;
        state.log_history.push(LogEntry::train_step(
            step,
            epoch,
            loss,
            logged_lr,
            Some(f64::from(clip.total_norm)),
        ));
        let elapsed = started.elapsed().as_secs_f64();
        // One record per step: the rate is this step's (the first one carries kernel
        // compilation on a GPU, so a run-long average would hide the steady rate).
        let record = MetricsRecord {
            step,
            epoch,
            loss,
            learning_rate: logged_lr,
            grad_norm: f64::from(clip.total_norm),
            tokens: tokens_seen,
            tokens_per_s: step_tokens as f64 / (elapsed - last_record_s).max(1e-9),
            elapsed_s: elapsed,
        };
        last_record_s = elapsed;
        metrics.append(&record)?;
        progress.update(&record);
        log_device_memory(&device, "after the optimizer step", tracing::Level::DEBUG);

        if cfg.save_steps > 0 && step % cfg.save_steps == 0 {
            let mut files = adapter_files(
                &adapter::to_peft(adapter_config.clone(), &model)?,
                &out.join(".adapter-scratch"),
            )?;
            files.extend(non_lora_file(&model, &out.join(".adapter-scratch"))?);
            state.set_control_for_save(step >= total);
            files.push(state.checkpoint_file());
            files.push(optim.checkpoint_file()?);
            // VILA's `save_model` writes the LLaVA config.json beside the adapter.
            files.push(CheckpointFile::bytes("config.json", base_config.clone()));
            files.push(CheckpointFile::json(
                SCHEDULER_FILE,
                &serde_json::json!({
                    "type": "cosine_with_warmup",
                    "base_lr": cfg.learning_rate,
                    "warmup_steps": warmup,
                    "total_steps": total,
                    "last_step": step,
                    "next_lr": schedule.lr_at(step),
                }),
            )?);
            files.push(CheckpointFile::json(
                RUN_STATE_FILE,
                &RunState {
                    global_step: step,
                    cursor: sampler.cursor_at_step(step),
                    seed: cfg.seed,
                    max_steps: total,
                    warmup_steps: warmup,
                },
            )?);
            let saved = manager.save(step, files)?;
            tracing::info!("saved {}", saved.checkpoint.path.display());
        }
    }
    progress.finish();

    // Final adapter in output_dir, then the trainer state, the curve, and last the marker.
    let final_adapter = adapter::to_peft(adapter_config, &model)?;
    final_adapter.save(&out)?;
    save_non_lora_trainables(
        &out.join(NON_LORA_TRAINABLES_FILE),
        &tuned::non_lora_tensors(&model)?,
    )?;
    state.save(&out.join(TRAINER_STATE_NAME))?;
    let points: Vec<(u64, f64)> = state
        .log_history
        .iter()
        .filter_map(|e| e.loss.map(|l| (e.step, l)))
        .collect();
    crate::plot::write_loss_curve(&out.join(LOSS_CURVE_FILE), &points, 800, 480)?;
    write_file_atomic(&out.join("config.json"), &base_config)?;
    Ok(RunOutcome::Finished {
        steps: step,
        losses,
    })
}
