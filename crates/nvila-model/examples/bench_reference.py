"""PyTorch side of the full-size inference benchmark (`bench_device.rs`), and the checkpoint both
sides load.

    python3 bench_reference.py make-ckpt DIR          # NVILA-Lite-8B shapes, random bf16 weights
    python3 bench_reference.py bench DIR --out torch.json --logits torch_logits.f32
    python3 bench_reference.py compare ours_logits.f32 torch_logits.f32

`make-ckpt` writes the real layout (top-level `config.json`, `llm/` sharded safetensors +
index, `vision_tower/`, `mm_projector/`) with the shapes of nvila.md §1.2–1.4 and random weights
(normal std 0.02 as HF's `initializer_range`, biases 0, norms 1). The tokenizer files are the
tiny golden checkpoint's (they carry Qwen2's special tokens and `<image>`; the benchmark feeds
ids directly).

`bench` runs the same phases on the same inputs as `bench_device.rs`: load, vision tower +
projector on 13 tiles, LLM forward with all logits at 4096 tokens, prefill into a cache (last
logits), and greedy decode at batch 1 with a manual loop over `DynamicCache` (as `generate`
does without its bookkeeping). Attention is PyTorch's `sdpa` (flash kernels on H200); the team's
VILA used flash-attention 2, which is not installed on the GPU host.
"""

import argparse
import json
import pathlib
import resource
import shutil
import sys
import time

import torch

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
TINY = ROOT / "fixtures" / "golden" / "tiny-nvila"
sys.path.insert(0, str(ROOT / "crates" / "nvila-model" / "tests" / "fixtures" / "projector"))
from gen import MultimodalProjector  # noqa: E402  (VILA's projector, as the golden tests use it)

SEQ, DECODE, TILES, REPEATS = 4096, 128, 13, 3


def llm_config():
    from transformers import Qwen2Config

    return Qwen2Config(
        hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, hidden_act="silu", rms_norm_eps=1e-6, rope_theta=1e6,
        max_position_embeddings=32768, tie_word_embeddings=False, vocab_size=152064,
        bos_token_id=151643, eos_token_id=151645, use_sliding_window=False, initializer_range=0.02,
    )


def vt_config():
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(
        hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
        image_size=448, patch_size=14, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh",
        vision_use_head=False,
    )


@torch.no_grad()
def randomise(module, std=0.02):
    for name, p in module.named_parameters():
        if p.dim() == 1 and ("norm" in name or "layernorm" in name or name.endswith("layers.1.weight")
                             or name.endswith("layers.4.weight")):
            p.fill_(1.0)
        elif p.dim() == 1:
            p.zero_()
        else:
            p.normal_(0.0, std)


def make_ckpt(out, llm_cfg=None, vt_cfg=None, dtype=torch.bfloat16, device="cuda"):
    """The checkpoint folder; NVILA-Lite-8B shapes unless other configs are given."""
    from transformers import Qwen2ForCausalLM, SiglipVisionModel

    llm_cfg, vt_cfg = llm_cfg or llm_config(), vt_cfg or vt_config()
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    t0 = time.time()
    with torch.device(device):
        llm = Qwen2ForCausalLM(llm_cfg).to(dtype)
        vt = SiglipVisionModel(vt_cfg).to(dtype)
        mm = MultimodalProjector("mlp_downsample_3x3_fix", vt_cfg.hidden_size, llm_cfg.hidden_size).to(dtype)
    for m in (llm, vt, mm):
        randomise(m)
    llm.save_pretrained(out / "llm", max_shard_size="5GB")
    vt.save_pretrained(out / "vision_tower")
    (out / "mm_projector").mkdir(exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous().cpu() for k, v in mm.state_dict().items()}, str(out / "mm_projector" / "model.safetensors"))
    mm_cfg = json.loads((TINY / "mm_projector" / "config.json").read_text())
    mm_cfg["torch_dtype"] = str(dtype).removeprefix("torch.")
    (out / "mm_projector" / "config.json").write_text(json.dumps(mm_cfg, indent=2))
    for name in ["tokenizer.json", "tokenizer_config.json", "added_tokens.json", "special_tokens_map.json"]:
        shutil.copy(TINY / "llm" / name, out / "llm" / name)
    shutil.copy(TINY / "vision_tower" / "preprocessor_config.json", out / "vision_tower")
    top = json.loads((TINY / "config.json").read_text())
    top["llm_cfg"] = json.loads((out / "llm" / "config.json").read_text())
    top["vision_tower_cfg"] = json.loads((out / "vision_tower" / "config.json").read_text())
    top["mm_projector_cfg"] = mm_cfg
    top["hidden_size"], top["mm_hidden_size"] = llm_cfg.hidden_size, vt_cfg.hidden_size
    top["model_dtype"] = str(dtype)
    top["_name_or_path"] = "nvila-lite-8b-shape-random"
    (out / "config.json").write_text(json.dumps(top, indent=2))
    print(json.dumps({"make_ckpt_s": time.time() - t0}))


def prompt_ids(seq):
    return torch.tensor([[(i * 7919 + 13) % 150_000 for i in range(seq)]], device="cuda")


def tile_pixels(tiles, size):
    n = tiles * 3 * size * size
    return ((torch.arange(n, device="cuda") % 255).float() / 127.5 - 1.0).reshape(tiles, 3, size, size)


def timed(fn, repeats=REPEATS):
    torch.cuda.synchronize()
    t = time.time()
    out = fn()
    torch.cuda.synchronize()
    cold = time.time() - t
    warm = []
    for _ in range(repeats):
        t = time.time()
        out = fn()
        torch.cuda.synchronize()
        warm.append(time.time() - t)
    warm.sort()
    return cold, warm[len(warm) // 2], out


def host_memory():
    status = pathlib.Path("/proc/self/status").read_text().splitlines()
    field = lambda name: next((float(l.split()[1]) / 1024 for l in status if l.startswith(name)), 0.0)  # noqa: E731
    return {"vm_hwm_mib": field("VmHWM:"), "rss_anon_mib": field("RssAnon:"), "rss_file_mib": field("RssFile:"),
            "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


@torch.no_grad()
def bench(ckpt, out_path, logits_path):
    from safetensors.torch import load_file
    from transformers import DynamicCache, Qwen2ForCausalLM, SiglipVisionModel

    ckpt = pathlib.Path(ckpt)
    report = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}
    t = time.time()
    llm = Qwen2ForCausalLM.from_pretrained(ckpt / "llm", dtype=torch.bfloat16, attn_implementation="sdpa", device_map="cuda").eval()
    vt = SiglipVisionModel.from_pretrained(ckpt / "vision_tower", dtype=torch.bfloat16, attn_implementation="sdpa", device_map="cuda").eval()
    mm = MultimodalProjector("mlp_downsample_3x3_fix", 1152, 3584).to(device="cuda", dtype=torch.bfloat16).eval()
    mm.load_state_dict(load_file(str(ckpt / "mm_projector" / "model.safetensors"), device="cuda"))
    torch.cuda.synchronize()
    report["load_s"] = time.time() - t
    report["host_after_load"] = host_memory()
    report["gpu_allocated_after_load_mib"] = torch.cuda.memory_allocated() / 2**20

    pixels = tile_pixels(TILES, 448).to(torch.bfloat16)
    def vision():
        hs = vt(pixel_values=pixels, output_hidden_states=True).hidden_states
        return mm(hs[-2])
    cold, warm, proj = timed(vision)
    report["vision"] = {"tiles": TILES, "tokens": proj.shape[0] * proj.shape[1], "cold_s": cold, "warm_s": warm}
    del proj

    ids = prompt_ids(SEQ)
    cold, warm, logits = timed(lambda: llm(input_ids=ids, use_cache=False).logits)
    last = logits[0, -1].float().cpu()
    del logits
    report["forward"] = {"seq": SEQ, "cold_s": cold, "warm_s": warm, "tokens_per_s": SEQ / warm}
    if logits_path:
        last.numpy().astype("<f4").tofile(logits_path)

    def prefill():
        cache = DynamicCache()
        out = llm(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return cache, out.logits[0, -1]
    cold, warm, (cache, first) = timed(prefill)
    report["prefill"] = {"seq": SEQ, "cold_s": cold, "warm_s": warm}

    nxt = first.argmax().view(1, 1)
    def phase(n):
        nonlocal nxt
        torch.cuda.synchronize()
        t = time.time()
        for _ in range(n):
            out = llm(input_ids=nxt, past_key_values=cache, use_cache=True)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        return time.time() - t
    cold = phase(DECODE)
    warm = phase(DECODE)
    report["decode"] = {"context": SEQ, "steps": DECODE, "cold_s": cold, "warm_s": warm, "tokens_per_s": DECODE / warm}
    report["gpu_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    report["gpu_max_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    report["host_end"] = host_memory()
    text = json.dumps(report, indent=2)
    print(text)
    if out_path:
        pathlib.Path(out_path).write_text(text + "\n")


def compare(ours, theirs):
    import numpy as np

    a = np.fromfile(ours, dtype="<f4")
    b = np.fromfile(theirs, dtype="<f4")
    assert a.shape == b.shape, (a.shape, b.shape)
    rel = float(np.abs(a - b).max() / np.abs(b).max())
    top5a, top5b = set(np.argsort(-a)[:5]), set(np.argsort(-b)[:5])
    print(json.dumps({"check": "full_size_last_logits_bf16", "vocab": int(a.size), "max_rel_err": rel,
                      "argmax_equal": bool(a.argmax() == b.argmax()), "top5_overlap": len(top5a & top5b),
                      "ok": rel <= 3e-2}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-ckpt"); m.add_argument("dir")
    b = sub.add_parser("bench"); b.add_argument("dir"); b.add_argument("--out"); b.add_argument("--logits")
    c = sub.add_parser("compare"); c.add_argument("ours"); c.add_argument("theirs")
    a = ap.parse_args()
    if a.cmd == "make-ckpt":
        make_ckpt(a.dir)
    elif a.cmd == "bench":
        bench(a.dir, a.out, a.logits)
    else:
        compare(a.ours, a.theirs)


if __name__ == "__main__":
    main()
