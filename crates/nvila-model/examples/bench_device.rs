//! Inference benchmark of a full-size NVILA-Lite checkpoint (random weights in the real layout,
//! made by `bench_reference.py make-ckpt`), the Rust side of the table in `docs/benchmarks.md`.
//! `bench_reference.py bench` measures PyTorch `transformers` on the same checkpoint, the same
//! inputs and the same phases; `bench_reference.py compare` checks our last-position logits
//! against PyTorch's (full-size correctness in bf16).
//!
//! Phases, each timed after a warm-up call (the first call pays NVRTC compilation and
//! autotuning; it is reported separately):
//! - `load`: `NvilaModel::from_checkpoint` (memory-mapped safetensors → device), with host
//!   memory right after (`VmHWM`, `RssAnon`, `RssFile` of `/proc/self/status`);
//! - `vision`: vision tower + projector on `--tiles` tiles (12 + thumbnail = 13 by default);
//! - `forward`: the LLM on `--seq` tokens with logits for every position (a training forward);
//! - `prefill`: the same prompt into an empty KV cache, logits of the last position only;
//! - `decode`: `--decode` greedy steps at batch 1 after that prefill.
//!
//! ```text
//! bench_device --checkpoint DIR --device cuda:0 --out ours.json --logits ours_logits.f32
//! ```

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use nvila_model::NvilaModel;
use nvila_model::processor::PixelValues;

struct Args {
    checkpoint: PathBuf,
    device: String,
    out: Option<PathBuf>,
    logits: Option<PathBuf>,
    seq: usize,
    decode: usize,
    tiles: usize,
    repeats: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        checkpoint: PathBuf::new(),
        device: "cuda:0".into(),
        out: None,
        logits: None,
        seq: 4096,
        decode: 128,
        tiles: 13,
        repeats: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--checkpoint" => args.checkpoint = PathBuf::from(value()?),
            "--device" => args.device = value()?,
            "--out" => args.out = Some(PathBuf::from(value()?)),
            "--logits" => args.logits = Some(PathBuf::from(value()?)),
            "--seq" => args.seq = number(value()?)?,
            "--decode" => args.decode = number(value()?)?,
            "--tiles" => args.tiles = number(value()?)?,
            "--repeats" => args.repeats = number(value()?)?.max(1),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.checkpoint.as_os_str().is_empty() {
        return Err("--checkpoint DIR is required".into());
    }
    Ok(args)
}

fn device(s: &str) -> Result<Device, String> {
    nvila_model::device::parse(s).map_err(|e| format!("--device: {e}"))
}

/// `VmHWM`, `RssAnon`, `RssFile` in MiB (Linux; zeros elsewhere).
fn host_memory() -> serde_json::Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    serde_json::json!({
        "vm_hwm_mib": field("VmHWM:"),
        "rss_anon_mib": field("RssAnon:"),
        "rss_file_mib": field("RssFile:"),
    })
}

/// The allocator's reserved bytes in MiB (`None` where the backend does not report it).
fn gpu_reserved_mib(device: &Device) -> Option<f64> {
    device
        .memory_pool_usage()
        .map(|u| u.bytes_reserved as f64 / (1024.0 * 1024.0))
}

/// Token `i` of the benchmark prompt; `bench_reference.py` uses the same formula.
fn prompt_ids(seq: usize) -> Vec<i64> {
    (0..seq as i64).map(|i| (i * 7919 + 13) % 150_000).collect()
}

/// Pixel `i` of the benchmark tiles, in [-1, 1]; `bench_reference.py` uses the same formula.
fn tile_pixels(tiles: usize, size: usize) -> Vec<f32> {
    (0..tiles * 3 * size * size)
        .map(|i| (i % 255) as f32 / 127.5 - 1.0)
        .collect()
}

/// Runs `f` once (cold) and `repeats` more times, syncing the device; returns
/// (cold seconds, median warm seconds, last output).
fn timed<T>(
    device: &Device,
    repeats: usize,
    mut f: impl FnMut() -> Result<T, String>,
) -> Result<(f64, f64, T), String> {
    let start = Instant::now();
    let mut out = f()?;
    device.sync().map_err(|e| format!("sync: {e:?}"))?;
    let cold = start.elapsed().as_secs_f64();
    let mut warm = Vec::new();
    for _ in 0..repeats {
        let start = Instant::now();
        out = f()?;
        device.sync().map_err(|e| format!("sync: {e:?}"))?;
        warm.push(start.elapsed().as_secs_f64());
    }
    warm.sort_by(f64::total_cmp);
    Ok((cold, warm[warm.len() / 2], out))
}

fn last_logits_f32(logits: Tensor<3>) -> Result<Vec<f32>, String> {
    let [b, s, v] = logits.dims();
    logits
        .slice([0..b, s - 1..s, 0..v])
        .cast(DType::F32)
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| format!("read logits: {e:?}"))
}

fn argmax(v: &[f32]) -> i64 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as i64
}

/// Records `key` in the report and logs it at once, so a run cut short keeps what it measured.
fn record(
    report: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    value: serde_json::Value,
) {
    eprintln!("{}", serde_json::json!({ key: &value }));
    report.insert(key.into(), value);
}

fn run(args: &Args) -> Result<serde_json::Value, String> {
    let device = device(&args.device)?;
    let mut report = serde_json::Map::new();
    let err = |e: nvila_model::ModelError| e.to_string();

    let start = Instant::now();
    let model = NvilaModel::from_checkpoint(&args.checkpoint, &device, None).map_err(err)?;
    device.sync().map_err(|e| format!("sync: {e:?}"))?;
    record(&mut report, "load_s", start.elapsed().as_secs_f64().into());
    record(&mut report, "host_after_load", host_memory());
    record(
        &mut report,
        "gpu_reserved_after_load_mib",
        gpu_reserved_mib(&device).into(),
    );
    let mut gpu_peak = gpu_reserved_mib(&device).unwrap_or(0.0);
    let dtype = model.llm_dtype();
    record(&mut report, "dtype", format!("{dtype:?}").into());

    // Vision tower + projector.
    let size = model.vision_tower.image_size;
    let pixels = PixelValues {
        data: tile_pixels(args.tiles, size),
        n_tiles: args.tiles,
        image_size: size,
    };
    let (cold, warm, projected) = timed(&device, args.repeats, || {
        model.encode_images(&pixels).map_err(err)
    })?;
    record(
        &mut report,
        "vision",
        serde_json::json!({"tiles": args.tiles, "tokens": projected.dims()[1] * args.tiles,
                           "cold_s": cold, "warm_s": warm}),
    );
    drop(projected);
    gpu_peak = gpu_peak.max(gpu_reserved_mib(&device).unwrap_or(0.0));

    // Forward with logits for every position.
    let ids_host = prompt_ids(args.seq);
    let ids =
        || Tensor::<2, Int>::from_data(TensorData::new(ids_host.clone(), [1, args.seq]), &device);
    let (cold, warm, logits) = timed(&device, args.repeats, || {
        model.llm.forward_ids(ids()).map_err(err)
    })?;
    let last = last_logits_f32(logits)?;
    record(
        &mut report,
        "forward",
        serde_json::json!({"seq": args.seq, "cold_s": cold, "warm_s": warm,
                           "tokens_per_s": args.seq as f64 / warm}),
    );
    gpu_peak = gpu_peak.max(gpu_reserved_mib(&device).unwrap_or(0.0));
    if let Some(path) = &args.logits {
        let bytes: Vec<u8> = last.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }

    // Prefill into an empty cache, last position only.
    let prefill = || -> Result<(nvila_model::text::KvCache, Vec<f32>), String> {
        let mut cache = model.llm.new_cache();
        let embeds = model.llm.embed(ids()).map_err(err)?;
        let hidden = model
            .llm
            .forward(embeds, None, Some(&mut cache))
            .map_err(err)?;
        let s = hidden.dims()[1];
        let h = hidden.dims()[2];
        let last = model.llm.logits(hidden.slice([0..1, s - 1..s, 0..h]));
        Ok((cache, last_logits_f32(last)?))
    };
    let (cold, warm, (mut cache, first)) = timed(&device, args.repeats, prefill)?;
    record(
        &mut report,
        "prefill",
        serde_json::json!({"seq": args.seq, "cold_s": cold, "warm_s": warm}),
    );
    gpu_peak = gpu_peak.max(gpu_reserved_mib(&device).unwrap_or(0.0));

    // Greedy decode at batch 1; the first block crossing pays a new shape, so time twice:
    // the first `decode` steps (cold) and then `decode` more (warm).
    let mut next = argmax(&first);
    let mut tokens = Vec::new();
    let mut step = |next: &mut i64| -> Result<(), String> {
        let id = Tensor::<2, Int>::from_data(TensorData::new(vec![*next], [1, 1]), &device);
        let embeds = model.llm.embed(id).map_err(err)?;
        let hidden = model
            .llm
            .forward(embeds, None, Some(&mut cache))
            .map_err(err)?;
        let logits = last_logits_f32(model.llm.logits(hidden))?;
        *next = argmax(&logits);
        tokens.push(*next);
        Ok(())
    };
    let mut phase = |n: usize| -> Result<f64, String> {
        let start = Instant::now();
        for _ in 0..n {
            step(&mut next)?;
        }
        device.sync().map_err(|e| format!("sync: {e:?}"))?;
        Ok(start.elapsed().as_secs_f64())
    };
    let cold = phase(args.decode)?;
    let warm = phase(args.decode)?;
    record(
        &mut report,
        "decode",
        serde_json::json!({"context": args.seq, "steps": args.decode, "cold_s": cold, "warm_s": warm,
                           "tokens_per_s": args.decode as f64 / warm}),
    );
    gpu_peak = gpu_peak.max(gpu_reserved_mib(&device).unwrap_or(0.0));
    record(&mut report, "gpu_reserved_peak_mib", gpu_peak.into());
    record(&mut report, "host_end", host_memory());
    Ok(serde_json::Value::Object(report))
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_device: {e}");
            std::process::exit(2);
        }
    };
    match run(&args) {
        Ok(report) => {
            let text = serde_json::to_string_pretty(&report).unwrap_or_default();
            println!("{text}");
            if let Some(out) = &args.out
                && let Err(e) = std::fs::write(out, text + "\n")
            {
                eprintln!("bench_device: {}: {e}", out.display());
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("bench_device: {e}");
            std::process::exit(1);
        }
    }
}
