"""PyTorch reference for `gpu-check`, run in the same session on the same GPUs.

Times the same bf16 GEMM sizes (cuBLAS) and, when two or more GPUs are visible, the same
16 Mi-element f32 all-reduce through NCCL (one thread per GPU is not how torch does it, so this
uses torch.distributed with one process per GPU, spawned here). Prints one JSON object per line,
in the same shape as gpu-check's output.
"""
import json
import os
import sys
import time

import torch


def gemm(sizes, iters=10):
    for n in sizes:
        a = torch.rand(n, n, device="cuda:0", dtype=torch.bfloat16) * 2 - 1
        b = torch.rand(n, n, device="cuda:0", dtype=torch.bfloat16) * 2 - 1
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(iters):
            a @ b
        torch.cuda.synchronize()
        s = (time.perf_counter() - t) / iters
        print(json.dumps({"check": "torch_gemm_bf16", "n": n, "ms": round(s * 1e3, 3),
                          "tflops": round(2 * n**3 / s / 1e12, 1)}), flush=True)


def _worker(rank, world, length):
    import torch.distributed as dist
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29511")
    dist.init_process_group("nccl", rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    secs = 0.0
    for it in range(3):
        t = torch.full((length,), float(rank + 1), device=f"cuda:{rank}")
        torch.cuda.synchronize()
        start = time.perf_counter()
        dist.all_reduce(t)
        torch.cuda.synchronize()
        if it > 0:
            secs = time.perf_counter() - start
    print(json.dumps({"check": "torch_nccl_all_reduce_sum", "rank": rank, "world": world,
                      "value": t[0].item(), "bytes": length * 4, "ms": round(secs * 1e3, 3),
                      "algbw_GBps": round(length * 4 / secs / 1e9, 1)}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "4096,8192").split(",")]
    print(json.dumps({"check": "torch_env", "torch": torch.__version__, "cuda": torch.version.cuda,
                      "device": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count()}),
          flush=True)
    gemm(sizes)
    if torch.cuda.device_count() >= 2:
        import torch.multiprocessing as mp
        mp.spawn(_worker, args=(torch.cuda.device_count(), 1 << 24), nprocs=torch.cuda.device_count())
