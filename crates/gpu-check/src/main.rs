//! `gpu-check`: proves, on a real machine, that this workspace's burn + cubecl build (NVRTC code
//! generation, placeholder `cubecl-llvm`, see ARCHITECTURE.md) computes correctly on CUDA:
//!
//! 1. a bf16 matmul, checked against an f32 matmul of the same bf16-rounded inputs on the CPU
//!    (`flex`) backend, then timed at a few sizes (TFLOP/s);
//! 2. one autodiff step (`loss = sum(tanh(x @ w))`), whose gradient is checked against the same
//!    computation on the CPU backend;
//! 3. an NCCL all-reduce across every GPU asked for, one thread per GPU (NCCL's single-process
//!    multi-device model: every rank must enter the collective concurrently).
//!
//! It prints one JSON object per check, so `docs/gpu.md` can quote the output verbatim. Without
//! the `cuda` feature it runs the same checks on `flex` only (useful to see the program works).

use std::time::Instant;

use anyhow::{Context, bail, ensure};
use burn::tensor::{DType, Device, Tensor, TensorData};
use clap::Parser;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Check matmul, autodiff and NCCL all-reduce on the GPUs of this machine")]
struct Args {
    /// Number of GPUs to use (cuda:0 .. cuda:N-1). The all-reduce check needs at least 2.
    #[arg(long, default_value_t = 1)]
    gpus: usize,
    /// Matrix sizes for the bf16 GEMM timing.
    #[arg(long, value_delimiter = ',', default_value = "4096,8192")]
    sizes: Vec<usize>,
    /// Timed iterations per size (after warm-up).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Run everything on the CPU backend (no GPU needed).
    #[arg(long)]
    cpu: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let devices = gpu_devices(&args)?;
    println!("{{\"check\":\"devices\",\"devices\":\"{devices:?}\"}}");

    check_matmul(&devices[0], &args)?;
    check_autodiff(&devices[0])?;
    if devices.len() >= 2 {
        check_all_reduce(&devices)?;
    } else {
        println!("{{\"check\":\"all_reduce\",\"skipped\":\"needs --gpus >= 2\"}}");
    }
    println!("{{\"check\":\"done\",\"ok\":true}}");
    Ok(())
}

/// The devices under test.
fn gpu_devices(args: &Args) -> anyhow::Result<Vec<Device>> {
    if args.cpu {
        return Ok(vec![Device::flex()]);
    }
    cuda_devices(args.gpus)
}

#[cfg(feature = "cuda")]
fn cuda_devices(n: usize) -> anyhow::Result<Vec<Device>> {
    ensure!(n >= 1, "--gpus must be at least 1");
    if n >= 2 {
        require_nccl()?;
    }
    Ok((0..n).map(Device::cuda).collect())
}

#[cfg(not(feature = "cuda"))]
fn cuda_devices(_n: usize) -> anyhow::Result<Vec<Device>> {
    bail!(
        "this binary was built without the `cuda` feature; rebuild with `--features cuda` or pass --cpu"
    )
}

/// cudarc (0.19) looks for `libnccl.so` but never `libnccl.so.2`, and without NCCL cubecl
/// silently disables device-to-device transport, after which all-reduce panics deep inside the
/// runtime. Fail early with the fix instead (see docs/gpu.md).
#[cfg(feature = "cuda")]
fn require_nccl() -> anyhow::Result<()> {
    let paths = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    let found = paths
        .split(':')
        .filter(|p| !p.is_empty())
        .any(|dir| std::path::Path::new(dir).join("libnccl.so").exists());
    ensure!(
        found,
        "libnccl.so not found on LD_LIBRARY_PATH ({paths}); NCCL is required for multi-GPU. \
         Create a `libnccl.so -> libnccl.so.2` symlink in a directory on LD_LIBRARY_PATH"
    );
    Ok(())
}

/// Deterministic pseudo-random values in [-1, 1), rounded to bf16 so that the GPU (bf16 inputs)
/// and CPU (f32 inputs) computations see the very same numbers.
fn bf16_values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = ((state >> 40) as f32) / ((1u64 << 24) as f32);
            round_to_bf16(unit * 2.0 - 1.0)
        })
        .collect()
}

/// Round-to-nearest-even to bf16, returned as f32.
fn round_to_bf16(x: f32) -> f32 {
    let bits = x.to_bits();
    let rounding = 0x7fff + ((bits >> 16) & 1);
    f32::from_bits((bits.wrapping_add(rounding)) & 0xffff_0000)
}

fn matrix(values: Vec<f32>, rows: usize, cols: usize, device: &Device, dtype: DType) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(values, [rows, cols]), device).cast(dtype)
}

fn to_f32_vec(t: Tensor<2>) -> anyhow::Result<Vec<f32>> {
    let data = t.cast(DType::F32).into_data();
    Ok(data
        .as_slice::<f32>()
        .map_err(|e| anyhow::anyhow!("reading tensor data: {e:?}"))?
        .to_vec())
}

/// Largest |a - b| / (|b| + 1): a relative error that does not explode near zero.
fn max_rel_err(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (y.abs() + 1.0))
        .fold(0.0, f32::max)
}

fn sync(device: &Device) -> anyhow::Result<()> {
    device
        .sync()
        .map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))
}

fn check_matmul(device: &Device, args: &Args) -> anyhow::Result<()> {
    // Correctness at a size the CPU backend computes quickly.
    let n = 512;
    let a = bf16_values(n * n, 1);
    let b = bf16_values(n * n, 2);
    let cpu = Device::flex();
    let expected = to_f32_vec(matrix(a.clone(), n, n, &cpu, DType::F32).matmul(matrix(
        b.clone(),
        n,
        n,
        &cpu,
        DType::F32,
    )))?;
    let got = to_f32_vec(matrix(a, n, n, device, DType::BF16).matmul(matrix(
        b,
        n,
        n,
        device,
        DType::BF16,
    )))?;
    let err = max_rel_err(&got, &expected);
    // bf16 output rounding alone is 2^-8 relative; sums of 512 products of O(1) values.
    let ok = err < 2e-2;
    println!(
        "{{\"check\":\"matmul_bf16_vs_cpu_f32\",\"n\":{n},\"max_rel_err\":{err:e},\"ok\":{ok}}}"
    );
    ensure!(ok, "bf16 matmul differs from the CPU f32 reference: {err}");

    for &size in &args.sizes {
        let x = matrix(bf16_values(size * size, 3), size, size, device, DType::BF16);
        let w = matrix(bf16_values(size * size, 4), size, size, device, DType::BF16);
        // Warm-up covers NVRTC compilation and autotune for this shape.
        for _ in 0..3 {
            let _ = x.clone().matmul(w.clone());
        }
        sync(device)?;
        let start = Instant::now();
        for _ in 0..args.iters {
            let _ = x.clone().matmul(w.clone());
        }
        sync(device)?;
        let secs = start.elapsed().as_secs_f64() / args.iters as f64;
        let tflops = 2.0 * (size as f64).powi(3) / secs / 1e12;
        println!(
            "{{\"check\":\"gemm_bf16\",\"n\":{size},\"ms\":{:.3},\"tflops\":{tflops:.1}}}",
            secs * 1e3
        );
    }
    Ok(())
}

/// `loss = sum(tanh(x @ w))`, gradient with respect to `w`, on `device` (bf16) and on the CPU (f32).
fn autodiff_grad(
    device: &Device,
    dtype: DType,
    x: &[f32],
    w: &[f32],
    n: usize,
) -> anyhow::Result<(f32, Vec<f32>)> {
    let ad = device.clone().autodiff();
    let xt = matrix(x.to_vec(), n, n, &ad, dtype);
    let wt = matrix(w.to_vec(), n, n, &ad, dtype).require_grad();
    let loss = xt.matmul(wt.clone()).tanh().sum();
    let grads = loss.backward();
    let loss_value = loss.cast(DType::F32).into_scalar::<f32>();
    let grad = wt.grad(&grads).context("no gradient for w")?;
    Ok((loss_value, to_f32_vec(grad)?))
}

fn check_autodiff(device: &Device) -> anyhow::Result<()> {
    let n = 256;
    // Scale inputs so tanh is not saturated and the gradient carries information.
    let x: Vec<f32> = bf16_values(n * n, 5)
        .iter()
        .map(|v| round_to_bf16(v * 0.125))
        .collect();
    let w: Vec<f32> = bf16_values(n * n, 6)
        .iter()
        .map(|v| round_to_bf16(v * 0.125))
        .collect();
    let start = Instant::now();
    let (loss, grad) = autodiff_grad(device, DType::BF16, &x, &w, n)?;
    let secs = start.elapsed().as_secs_f64();
    let (loss_ref, grad_ref) = autodiff_grad(&Device::flex(), DType::F32, &x, &w, n)?;
    let err = max_rel_err(&grad, &grad_ref);
    let loss_err = (loss - loss_ref).abs() / (loss_ref.abs() + 1.0);
    let ok = err < 5e-2 && loss_err < 5e-2;
    println!(
        "{{\"check\":\"autodiff_bf16_vs_cpu_f32\",\"n\":{n},\"loss\":{loss},\"loss_ref\":{loss_ref},\"grad_max_rel_err\":{err:e},\"first_call_s\":{secs:.2},\"ok\":{ok}}}"
    );
    ensure!(
        ok,
        "autodiff gradient differs from the CPU reference: {err}"
    );
    Ok(())
}

fn check_all_reduce(devices: &[Device]) -> anyhow::Result<()> {
    use burn::tensor::distributed::{
        DistributedConfig, DistributedContext, ReduceOperation, all_reduce,
    };

    let len = 1 << 24; // 16 Mi f32 = 64 MiB per GPU, large enough to time the link.
    let world = devices.len();
    let _context = DistributedContext::init(
        devices.to_vec(),
        DistributedConfig {
            all_reduce_op: ReduceOperation::Sum,
        },
    );
    let results: Vec<anyhow::Result<(usize, f32, f64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(rank, device)| {
                let all = devices.to_vec();
                scope.spawn(move || -> anyhow::Result<(usize, f32, f64)> {
                    let mut last = 0.0;
                    let mut secs = 0.0;
                    for iter in 0..3 {
                        let t = Tensor::<2>::from_data(
                            TensorData::new(vec![(rank + 1) as f32; len], [1, len]),
                            device,
                        );
                        sync(device)?;
                        let start = Instant::now();
                        let reduced = all_reduce(t, ReduceOperation::Sum, all.clone()).resolve();
                        sync(device)?;
                        if iter > 0 {
                            secs = start.elapsed().as_secs_f64();
                        }
                        let values = to_f32_vec(reduced.slice([0..1, 0..4]))?;
                        last = values[0];
                    }
                    Ok((rank, last, secs))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("all-reduce thread panicked")))
            })
            .collect()
    });
    let expected = (world * (world + 1) / 2) as f32;
    for result in results {
        let (rank, value, secs) = result?;
        let gbps = (len * 4) as f64 / secs / 1e9;
        let ok = (value - expected).abs() < 1e-3;
        println!(
            "{{\"check\":\"nccl_all_reduce_sum\",\"rank\":{rank},\"world\":{world},\"value\":{value},\"expected\":{expected},\"bytes\":{},\"ms\":{:.3},\"algbw_GBps\":{gbps:.1},\"ok\":{ok}}}",
            len * 4,
            secs * 1e3
        );
        if !ok {
            bail!("all-reduce on rank {rank} gave {value}, expected {expected}");
        }
    }
    Ok(())
}
