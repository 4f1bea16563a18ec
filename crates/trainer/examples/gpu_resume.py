"""Resume on a GPU (issue 4: "bit-equal on CPU; state the tolerance on GPU").

    python3 gpu_resume.py --trainer BIN --out resume.json [--device cuda:0] [--steps 6]

On the tiny golden checkpoint and a small VILA dataset (`bench_train_reference.py make-data`):
1. two uninterrupted runs (their difference is the device's run-to-run nondeterminism);
2. a run SIGKILLed as soon as its first checkpoint is complete, then the same command again
   (it resumes from that checkpoint, as VILA's scripts re-run after a crash).
Reports the largest absolute and relative differences of the final adapters' tensors and of
the logged losses, uninterrupted vs uninterrupted and uninterrupted vs resumed.
"""

import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import load_file

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
TINY = ROOT / "fixtures" / "golden" / "tiny-nvila"


def command(trainer, data, out, device, steps):
    return [trainer, "--config", str(HERE / "team.yaml"), "--model-path", str(TINY),
            "--registry", str(data / "registry.yaml"), "--data-mixture", "bench_train",
            "--output-dir", str(out), "--max-steps", str(steps), "--device", device,
            "--model-max-length", "256", "--save-steps", "2", "--save-total-limit", "3"]


def run(cmd, log):
    with open(log, "a") as sink:
        return subprocess.run(cmd, stdout=sink, stderr=subprocess.STDOUT).returncode


def killed_then_resumed(cmd, out, log):
    """Starts `cmd`, SIGKILLs it once `checkpoint-2` is complete (its manifest written), reruns."""
    with open(log, "a") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline:
            if (out / "checkpoint-2" / "manifest.json").exists():
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait()
    killed = proc.returncode == -signal.SIGKILL
    return killed, run(cmd, log)


def compare(a, b):
    ta, tb = load_file(str(a / "adapter_model.safetensors")), load_file(str(b / "adapter_model.safetensors"))
    assert ta.keys() == tb.keys()
    max_abs, max_rel = 0.0, 0.0
    for k in ta:
        x, y = ta[k].astype(np.float64), tb[k].astype(np.float64)
        d = float(np.abs(x - y).max())
        max_abs = max(max_abs, d)
        max_rel = max(max_rel, d / max(float(np.abs(y).max()), 1e-30))
    la = [json.loads(l)["loss"] for l in (a / "metrics.jsonl").read_text().splitlines() if l.strip()]
    lb = [json.loads(l)["loss"] for l in (b / "metrics.jsonl").read_text().splitlines() if l.strip()]
    loss_rel = max(abs(x - y) / abs(y) for x, y in zip(la, lb)) if la and len(la) == len(lb) else None
    bitequal = (a / "adapter_model.safetensors").read_bytes() == (b / "adapter_model.safetensors").read_bytes()
    return {"adapter_max_abs": max_abs, "adapter_max_rel": max_rel, "loss_max_rel": loss_rel,
            "bit_equal": bitequal, "steps": [len(la), len(lb)]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trainer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--work", default="/tmp/gpu_resume")
    a = ap.parse_args()
    work = pathlib.Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = work / "data"
    subprocess.run([sys.executable, str(HERE / "bench_train_reference.py"), "make-data", str(data),
                    "--ckpt", str(TINY), "--tokens", "256", "--samples", "8"], check=True,
                   stdout=subprocess.DEVNULL)
    log = work / "trainer.log"
    report = {"device": a.device, "steps": a.steps}
    t = time.time()
    first, second, resumed = work / "full_a", work / "full_b", work / "resumed"
    report["exit_full"] = [run(command(a.trainer, data, d, a.device, a.steps), log) for d in (first, second)]
    killed, code = killed_then_resumed(command(a.trainer, data, resumed, a.device, a.steps), resumed, log)
    report.update({"killed_at_checkpoint_2": killed, "exit_resumed": code})
    if all(c == 0 for c in report["exit_full"]) and code == 0:
        report["full_vs_full"] = compare(second, first)
        report["resumed_vs_full"] = compare(resumed, first)
    report["wall_s"] = time.time() - t
    text = json.dumps(report, indent=2)
    print(text)
    pathlib.Path(a.out).write_text(text + "\n")
    shutil.copy(log, pathlib.Path(a.out).with_suffix(".log"))


if __name__ == "__main__":
    main()
