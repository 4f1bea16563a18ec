#!/usr/bin/env bash
# One call on the H200 machine (docs/gpu.md): issue 4's training benchmark at the NVILA-Lite-8B
# shape, ours beside PyTorch + PEFT, then the inference benchmark if time is left.
#
#   run: bash crates/trainer/examples/gpu_call.sh      (carry target/gpu, built here with
#        cargo build --release -p trainer -p nvila-model --features trainer/cuda,nvila-model/cuda
#        --bins --examples; binaries gzipped into target/gpu/)
#
# Everything it learns goes under $OUT; the last lines printed are a summary.
set -u
OUT=${OUT:-/tmp/out}
BUDGET=${BUDGET:-580}          # seconds this script may use in all
T0=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - T0))); }
stamp() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$OUT/timeline.txt"; }

export CUDA_PATH=/usr/local/cuda
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export NVILA_CRATE_DIR=$PWD/crates/nvila-model
export RUST_LOG=${RUST_LOG:-info}
BENCH=crates/trainer/examples/bench_train_reference.py

mkdir -p /tmp/bin
for f in target/gpu/*.gz; do
  gunzip -c "$f" > "/tmp/bin/$(basename "$f" .gz)" && chmod +x "/tmp/bin/$(basename "$f" .gz)"
done
ls -la /tmp/bin > "$OUT/bins.txt"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -lms 500 \
  > "$OUT/smi.csv" 2>&1 &
SMI=$!
stamp "start"

# 1. The 8B-shape checkpoint (random bf16 weights, real layout) in the background; meanwhile a
#    smoke run of the CUDA trainer on the tiny golden checkpoint (it also fills the kernel cache).
python3 crates/nvila-model/examples/bench_reference.py make-ckpt /tmp/ck > "$OUT/make_ckpt.log" 2>&1 &
CK=$!
python3 $BENCH make-data /tmp/data_tiny --ckpt fixtures/golden/tiny-nvila --tokens 256 --samples 8 \
  > "$OUT/make_data_tiny.log" 2>&1
python3 $BENCH ours --trainer /tmp/bin/trainer --ckpt fixtures/golden/tiny-nvila --data /tmp/data_tiny \
  --steps 4 --seq 256 --timeout 60 --stacks-at 40 --log "$OUT/tiny_train.log" \
  --out "$OUT/tiny_train.json" --run-dir /tmp/run_tiny > "$OUT/tiny_bench.log" 2>&1
stamp "tiny trainer on cuda: exit $?"
wait $CK
stamp "8B checkpoint: exit $? ($(du -sh /tmp/ck | cut -f1))"

# 2. Training: PyTorch + PEFT, then ours, same checkpoint, data and shapes.
python3 $BENCH make-data /tmp/data --ckpt /tmp/ck > "$OUT/make_data.log" 2>&1
timeout 150 python3 $BENCH torch --ckpt /tmp/ck --data /tmp/data --steps 4 \
  --out "$OUT/torch_train.json" > "$OUT/torch_train.log" 2>&1
stamp "torch training: exit $?"
OURS_LIMIT=$(( $(left) - 110 ))
python3 $BENCH ours --trainer /tmp/bin/trainer --ckpt /tmp/ck --data /tmp/data --steps 4 \
  --timeout $OURS_LIMIT --stacks-at 90 180 --log "$OUT/ours_train.log" \
  --out "$OUT/ours_train.json" --run-dir /tmp/run > "$OUT/ours_bench.log" 2>&1
stamp "ours training: exit $? (limit $OURS_LIMIT s)"

# 3. Inference (issue 3's table), with what is left.
if [ -x /tmp/bin/bench_device ] && [ "$(left)" -gt 60 ]; then
  timeout $(( $(left) - 40 )) python3 crates/nvila-model/examples/bench_reference.py bench /tmp/ck \
    --out "$OUT/torch_infer.json" > "$OUT/torch_infer.log" 2>&1 &
  TI=$!
  wait $TI
  stamp "torch inference: exit $?"
  timeout $(( $(left) - 15 )) /tmp/bin/bench_device --checkpoint /tmp/ck --device cuda:0 \
    --out "$OUT/ours_infer.json" > "$OUT/ours_infer.log" 2>&1
  stamp "ours inference: exit $?"
fi

kill $SMI 2>/dev/null
echo "== summary"
cat "$OUT/timeline.txt"
for f in tiny_train torch_train ours_train; do
  [ -f "$OUT/$f.json" ] && python3 - "$OUT/$f.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
keep = ("exit_code", "timed_out", "wall_s", "steps", "tokens_per_s", "first_step_s", "median_step_s",
        "load_s", "host_vm_hwm_mib", "host_rss_anon_peak_mib", "gpu_peak_used_mib_nvidia_smi",
        "gpu_total_used_peak_mib", "gpu_total_used_before_mib", "gpu_max_allocated_mib",
        "gpu_max_reserved_mib", "host")
print(sys.argv[1].split("/")[-1], json.dumps({k: r[k] for k in keep if k in r}))
EOF
done
tail -5 "$OUT/ours_train.log" 2>/dev/null
