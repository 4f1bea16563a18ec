"""The training benchmark of issue 4: the team's LoRA recipe at 4096 tokens, ours beside
PyTorch + PEFT on the same checkpoint, data and shapes.

    python3 bench_train_reference.py make-ckpt OUT --hidden 1024 --layers 8 ...   # a CPU-size model
    python3 bench_train_reference.py make-data OUT --ckpt CKPT [--tokens 4096] [--samples 8]
    python3 bench_train_reference.py torch --ckpt CKPT --data OUT --steps 4 --out torch.json \
        [--device cuda|cpu] [--dtype bf16|f32] [--seq 4096]
    python3 bench_train_reference.py ours --trainer BIN --ckpt CKPT --data OUT --steps 4 \
        --out ours.json [--device cuda:0] [--dtype bf16|f32] [--seq 4096]

`CKPT` is the NVILA-Lite-8B-shape random checkpoint of `nvila-model/examples/bench_reference.py
make-ckpt` (or, to try the script on a laptop, `fixtures/golden/tiny-nvila`). `make-data` writes a
VILA-format dataset (`train.json` in LLaVA's conversation schema, PNG images) whose samples
expand to at least `--tokens` tokens with the checkpoint's tokenizer (the trainer truncates to
`model_max_length`, as VILA), and `registry.yaml` registering it as `bench_train`, so ours runs
as the team would:

    trainer --config crates/trainer/examples/team.yaml --model-path CKPT \
        --registry OUT/registry.yaml --data-mixture bench_train --output-dir RUN \
        --max-steps 4 --device cuda:0

`ours` runs exactly that command (the team's config, `--max-steps`, a fresh output folder),
polling the process every 0.2 s for its peak RSS (`VmHWM`) and, where `nvidia-smi` exists, its
GPU memory; tokens/s per step come from the run's `metrics.jsonl`.

`torch` runs the same recipe in PyTorch: frozen SigLIP + projector embed the image tiles (VILA's
dynamic tiling is not re-implemented here: the tile count is the one our processor reports for
this image size, `TILES`), the LLM is `Qwen2ForCausalLM` with `gradient_checkpointing_enable()`
and PEFT LoRA (r 16, alpha 32, dropout 0.05, every linear layer of the LLM), `torch.optim.AdamW`
(lr 1e-4, the schedule's warmup is irrelevant to speed), per-device batch 1 with 2 accumulation
steps (the team's global batch 2 on one GPU), loss = token mean over the supervised response.
It reports tokens/s per optimizer step (median of the steps after the first), peak GPU memory
(`max_memory_allocated` and `max_memory_reserved`) and the host's peak RSS.
"""

import argparse
import json
import pathlib
import resource
import sys
import time

import torch

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "crates" / "nvila-model" / "tests" / "fixtures" / "projector"))
from gen import MultimodalProjector  # noqa: E402  (VILA's projector, as the golden tests use it)

# An 896 x 896 image tiles as 2 x 2 tiles of 448 plus the thumbnail under `dynamic` (VILA's
# `dynamic_preprocess`): 5 tiles x 121 tokens after the 3x3 projector.
IMAGE_SIDE, TILES = 896, 5
PROMPT = "<image>\nDescribe the traffic scene in detail: the pedestrian, the vehicle and the environment."
SENTENCE = ("The pedestrian in a dark jacket stands at the curb on the near side of the crossing while "
            "the white sedan approaches slowly in the right lane under clear weather and dry asphalt. ")


def make_small_ckpt(out, hidden, layers, heads, kv_heads, inter, vocab):
    """A Qwen2 of the given size (f32, CPU) with the tiny golden checkpoint's SigLIP shape and
    tokenizer, in the real layout, for measuring on a machine without a GPU."""
    sys.path.insert(0, str(ROOT / "crates" / "nvila-model" / "examples"))
    from bench_reference import TINY, make_ckpt
    from transformers import Qwen2Config, SiglipVisionConfig

    llm = Qwen2Config(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, hidden_act="silu",
                      rms_norm_eps=1e-6, rope_theta=1e6, max_position_embeddings=32768,
                      tie_word_embeddings=False, vocab_size=vocab, use_sliding_window=False,
                      initializer_range=0.02)
    vt = SiglipVisionConfig(**{k: v for k, v in json.loads((TINY / "vision_tower" / "config.json").read_text()).items()
                               if k not in ("architectures", "dtype", "transformers_version", "model_type")})
    make_ckpt(out, llm, vt, dtype=torch.float32, device="cpu")


def status_mib(pid, name):
    """A `/proc/PID/status` field (`VmHWM:`, `RssAnon:`, ...) in MiB, or None."""
    try:
        lines = pathlib.Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    return next((float(l.split()[1]) / 1024 for l in lines if l.startswith(name)), None)


class PeakAnon:
    """Polls a process's `RssAnon` every 0.2 s: `VmHWM` also counts the file pages of
    memory-mapped checkpoints, which the kernel can drop at will, so both are reported."""

    def __init__(self, pid="self"):
        import threading

        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, status_mib(self.pid, "RssAnon:") or 0.0)
            self.stop.wait(0.2)


def host_memory(anon=None):
    return {"vm_hwm_mib": status_mib("self", "VmHWM:"), "rss_anon_mib": status_mib("self", "RssAnon:"),
            "rss_anon_peak_mib": anon.peak if anon else None,
            "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def make_data(out, ckpt, tokens, samples):
    from PIL import Image
    from tokenizers import Tokenizer

    out = pathlib.Path(out).resolve()
    (out / "images").mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_file(str(pathlib.Path(ckpt) / "llm" / "tokenizer.json"))
    per_sentence = len(tok.encode(SENTENCE, add_special_tokens=False).ids)
    # Enough text that prompt + image + response exceeds `tokens` even before truncation.
    response = SENTENCE * (tokens // max(per_sentence, 1) + 2)
    records = []
    for i in range(samples):
        name = f"scene_{i:03}.png"
        xs = torch.arange(IMAGE_SIDE, dtype=torch.int64)
        r = ((xs[None, :] * 3 + i * 17) % 256).expand(IMAGE_SIDE, IMAGE_SIDE)
        g = ((xs[:, None] * 5 + i * 29) % 256).expand(IMAGE_SIDE, IMAGE_SIDE)
        b = ((xs[None, :] + xs[:, None] + i * 7) % 256)
        pixels = torch.stack([r, g, b], dim=-1).to(torch.uint8).numpy()
        Image.fromarray(pixels, "RGB").save(out / "images" / name)
        records.append({"id": f"bench_{i:03}", "image": name, "conversations": [
            {"from": "human", "value": PROMPT}, {"from": "gpt", "value": response}]})
    (out / "train.json").write_text(json.dumps(records, indent=1))
    (out / "registry.yaml").write_text(
        "bench_train:\n"
        "    _target_: llava.data.LLaVADataset\n"
        f"    data_path: {out / 'train.json'}\n"
        f"    media_dir: {out / 'images'}\n")
    print(json.dumps({"samples": samples, "response_tokens": len(tok.encode(response, add_special_tokens=False).ids),
                      "data": str(out)}))


def sample_ids(tok, text_ids_budget):
    """Chat-template ids (Qwen2 template, as VILA) with the image placeholder as one id; labels on
    the response and its <|im_end|>."""
    system = "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\n"
    prompt = system + PROMPT + "<|im_end|>\n<|im_start|>assistant\n"
    p = tok.encode(prompt, add_special_tokens=False).ids
    r = tok.encode(SENTENCE * (text_ids_budget // 8 + 2), add_special_tokens=False).ids
    r += tok.encode("<|im_end|>", add_special_tokens=False).ids
    return p, r


def bench_torch(ckpt, data, steps, out_path, device, dtype_name, seq):
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from tokenizers import Tokenizer
    from transformers import Qwen2ForCausalLM, SiglipVisionModel

    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[dtype_name]
    ckpt = pathlib.Path(ckpt)
    top = json.loads((ckpt / "config.json").read_text())
    report = {"torch": torch.__version__, "device": device, "dtype": dtype_name, "seq": seq}
    if device == "cuda":
        report["gpu"] = torch.cuda.get_device_name(0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    anon = PeakAnon()
    t = time.time()
    attn = "sdpa"
    llm = Qwen2ForCausalLM.from_pretrained(ckpt / "llm", dtype=dtype, attn_implementation=attn).to(device)
    vt = SiglipVisionModel.from_pretrained(ckpt / "vision_tower", dtype=dtype, attn_implementation=attn).to(device).eval()
    mm_type = top.get("mm_projector_cfg", {}).get("mm_projector_type", "mlp_downsample_3x3_fix")
    mm = MultimodalProjector(mm_type, vt.config.hidden_size, llm.config.hidden_size).to(device=device, dtype=dtype).eval()
    mm.load_state_dict(load_file(str(ckpt / "mm_projector" / "model.safetensors"), device=device))
    for p in list(vt.parameters()) + list(mm.parameters()):
        p.requires_grad_(False)
    llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    llm.enable_input_require_grads()
    llm.config.use_cache = False
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=targets, bias="none",
                      task_type="CAUSAL_LM")
    model = get_peft_model(llm, lora)
    # from_pretrained returns the model in eval mode, and HF recomputes layers only when
    # `self.gradient_checkpointing and self.training`: without train() the run keeps every
    # activation (64 GB at 4096 tokens on the H200, 2026-11-30) and is no reference.
    model.train()
    assert llm.model.gradient_checkpointing and llm.model.training
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                            betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sync()
    report["load_s"] = time.time() - t
    report["trainable_parameters"] = trainable

    tok = Tokenizer.from_file(str(ckpt / "llm" / "tokenizer.json"))
    embed = model.get_input_embeddings()
    side = vt.config.image_size
    pixels = ((torch.arange(TILES * 3 * side * side, device=device) % 255).float() / 127.5 - 1.0)
    pixels = pixels.reshape(TILES, 3, side, side).to(dtype)

    def image_features():
        with torch.no_grad():
            feats = mm(vt(pixel_values=pixels, output_hidden_states=True).hidden_states[-2])
            return feats.reshape(1, -1, feats.shape[-1])

    # The response is cut so that prompt + image + response is exactly `seq` tokens.
    image_tokens = image_features().shape[1]
    prompt, response = sample_ids(tok, seq)
    response = response[: seq - len(prompt) + 1 - image_tokens]
    report["image_tokens"] = image_tokens

    def micro_batch():
        feats = image_features()
        ids = torch.tensor([prompt + response], device=device)
        text = embed(ids)
        k = prompt.index(tok.token_to_id("<image>")) if tok.token_to_id("<image>") in prompt else 0
        embeds = torch.cat([text[:, :k], feats, text[:, k + 1:]], dim=1)[:, :seq]
        labels = torch.full(embeds.shape[:2], -100, device=device)
        start = len(prompt) - 1 + feats.shape[1]
        labels[0, start:] = ids[0, len(prompt):len(prompt) + labels.shape[1] - start]
        return embeds, labels

    step_times, losses, tokens = [], [], 0
    for step in range(steps):
        sync()
        t = time.time()
        step_tokens = 0
        for _ in range(2):  # per-device batch 1 x 2 accumulation steps = global batch 2
            embeds, labels = micro_batch()
            out = model(inputs_embeds=embeds, labels=labels)
            (out.loss / 2).backward()
            losses.append(float(out.loss))
            step_tokens += embeds.shape[1]
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        step_times.append(time.time() - t)
        tokens += step_tokens
        print(json.dumps({"step": step + 1, "s": step_times[-1], "tokens": step_tokens, "loss": losses[-1]}), flush=True)
    warm = sorted(step_times[1:]) or step_times
    median = warm[len(warm) // 2]
    report.update({
        "steps": steps, "tokens_per_step": step_tokens, "first_step_s": step_times[0], "median_step_s": median,
        "tokens_per_s": step_tokens / median, "losses": losses, "host": host_memory(anon),
    })
    if device == "cuda":
        report["gpu_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        report["gpu_max_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    text = json.dumps(report, indent=2)
    print(text)
    if out_path:
        pathlib.Path(out_path).write_text(text + "\n")


def nvidia_smi(*query):
    import subprocess

    try:
        return subprocess.run(["nvidia-smi", *query, "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def gpu_used_mib(pid):
    """GPU memory of process `pid` as `nvidia-smi` reports it (its CUDA context included), and
    the whole GPU's used memory (the per-process row is missing in some VMs)."""
    out = nvidia_smi("--query-compute-apps=pid,used_memory")
    own = None
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid):
            own = float(parts[1])
    total = nvidia_smi("--query-gpu=memory.used")
    try:
        total = float(total.splitlines()[0]) if total else None
    except ValueError:
        total = None
    return own, total


def stacks(pid, path):
    """All threads' stacks of a running process (`cuda-gdb` is the debugger the GPU machine has)."""
    import shutil
    import subprocess

    gdb = shutil.which("cuda-gdb") or shutil.which("gdb")
    if not gdb:
        return
    try:
        out = subprocess.run([gdb, "-batch", "-p", str(pid), "-ex", "thread apply all bt 40"],
                             capture_output=True, text=True, timeout=60)
        pathlib.Path(path).write_text(out.stdout + out.stderr)
    except (OSError, subprocess.SubprocessError) as e:
        pathlib.Path(path).write_text(f"{gdb}: {e}\n")


def bench_ours(trainer, ckpt, data, steps, out_path, device, dtype_name, seq, run_dir, timeout, stacks_at, log,
               extra=()):
    import shutil
    import subprocess

    run_dir = pathlib.Path(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [trainer, "--config", str(HERE / "team.yaml"), "--model-path", str(ckpt),
           "--registry", str(pathlib.Path(data) / "registry.yaml"), "--data-mixture", "bench_train",
           "--output-dir", str(run_dir), "--max-steps", str(steps), "--device", device,
           "--dtype", dtype_name, "--model-max-length", str(seq), "--save-steps", str(steps + 1), *extra]
    print("$ " + " ".join(cmd), flush=True)
    baseline = gpu_used_mib(0)[1]
    t = time.time()
    sink = open(log, "w") if log else None
    proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT if sink else None)
    hwm, anon, gpu, gpu_total = 0.0, 0.0, None, None
    pending = sorted(stacks_at)
    timed_out = False
    while proc.poll() is None:
        hwm = max(hwm, status_mib(proc.pid, "VmHWM:") or 0.0)
        anon = max(anon, status_mib(proc.pid, "RssAnon:") or 0.0)
        own, total = gpu_used_mib(proc.pid)
        if own is not None:
            gpu = max(gpu or 0.0, own)
        if total is not None:
            gpu_total = max(gpu_total or 0.0, total)
        waited = time.time() - t
        if pending and waited >= pending[0]:
            stacks(proc.pid, f"{log or 'ours'}.stacks_{int(pending.pop(0))}s.txt")
        if timeout and waited > timeout:
            stacks(proc.pid, f"{log or 'ours'}.stacks_timeout.txt")
            proc.kill()
            timed_out = True
            break
        time.sleep(0.2)
    proc.wait()
    wall = time.time() - t
    records = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l.strip()] \
        if (run_dir / "metrics.jsonl").exists() else []
    # Each record holds its own step's rate; the first step carries kernel compilation.
    rates = sorted(r["tokens_per_s"] for r in records[1:] if r.get("tokens_per_s")) or \
        [r["tokens_per_s"] for r in records if r.get("tokens_per_s")]
    report = {"command": cmd, "exit_code": proc.returncode, "timed_out": timed_out, "wall_s": wall,
              "device": device, "dtype": dtype_name, "seq": seq, "steps": len(records),
              "tokens_per_s": rates[len(rates) // 2] if rates else None, "records": records,
              "host_vm_hwm_mib": hwm, "host_rss_anon_peak_mib": anon,
              "gpu_peak_used_mib_nvidia_smi": gpu, "gpu_total_used_peak_mib": gpu_total,
              "gpu_total_used_before_mib": baseline}
    text = json.dumps(report, indent=2)
    print(text)
    if out_path:
        pathlib.Path(out_path).write_text(text + "\n")
    if proc.returncode != 0:
        sys.exit(proc.returncode or 1)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-data")
    m.add_argument("out"); m.add_argument("--ckpt", required=True)
    m.add_argument("--tokens", type=int, default=4096); m.add_argument("--samples", type=int, default=8)
    k = sub.add_parser("make-ckpt")
    k.add_argument("out"); k.add_argument("--hidden", type=int, default=1024)
    k.add_argument("--layers", type=int, default=8); k.add_argument("--heads", type=int, default=16)
    k.add_argument("--kv-heads", type=int, default=2); k.add_argument("--inter", type=int, default=2816)
    k.add_argument("--vocab", type=int, default=32000)
    b = sub.add_parser("torch")
    b.add_argument("--ckpt", required=True); b.add_argument("--data", required=True)
    b.add_argument("--steps", type=int, default=4); b.add_argument("--out")
    b.add_argument("--device", default="cuda"); b.add_argument("--dtype", default="bf16")
    b.add_argument("--seq", type=int, default=4096, help="model_max_length")
    o = sub.add_parser("ours")
    o.add_argument("--trainer", required=True); o.add_argument("--ckpt", required=True)
    o.add_argument("--data", required=True); o.add_argument("--steps", type=int, default=4)
    o.add_argument("--out"); o.add_argument("--device", default="cuda:0"); o.add_argument("--dtype", default="bf16")
    o.add_argument("--seq", type=int, default=4096); o.add_argument("--run-dir", default="bench_train_run")
    o.add_argument("--timeout", type=float, default=0, help="kill after this many seconds (0: never)")
    o.add_argument("--stacks-at", type=float, nargs="*", default=[],
                   help="seconds after the start at which to save all threads' stacks")
    o.add_argument("--log", help="the trainer's output goes here (stacks beside it)")
    o.add_argument("--extra", default="", help="more trainer flags, e.g. \"--attention-chunk 256\"")
    a = ap.parse_args()
    if a.cmd == "make-data":
        make_data(a.out, a.ckpt, a.tokens, a.samples)
    elif a.cmd == "make-ckpt":
        make_small_ckpt(a.out, a.hidden, a.layers, a.heads, a.kv_heads, a.inter, a.vocab)
    elif a.cmd == "ours":
        bench_ours(a.trainer, a.ckpt, a.data, a.steps, a.out, a.device, a.dtype, a.seq, a.run_dir,
                   a.timeout, a.stacks_at, a.log, a.extra.split())
    else:
        bench_torch(a.ckpt, a.data, a.steps, a.out, a.device, a.dtype, a.seq)


if __name__ == "__main__":
    main()
