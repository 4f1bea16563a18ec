#!/usr/bin/env bash
# One call on the H200 machine (docs/gpu.md): issue 4's training benchmark at the NVILA-Lite-8B
# shape, ours beside PyTorch + PEFT, then the inference benchmark (issue 3's table) if time is
# left.
#
#   run: bash crates/trainer/examples/gpu_call.sh      (carry target/gpu, built here with
#        cargo build --release -p trainer -p nvila-model --features trainer/cuda,nvila-model/cuda
#        --bins --examples; trainer and bench_device gzipped into target/gpu/)
#
# At most 8 files come back from $OUT, so everything is written under a work folder and packed
# into $OUT/results.tgz at the end; summary.txt beside it. The last lines printed are the summary.
set -u
OUT=${OUT:-/tmp/out}
W=/tmp/w
mkdir -p "$W"
BUDGET=${BUDGET:-570}          # seconds this script may use in all
T0=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - T0))); }
stamp() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$W/timeline.txt"; }
pack() {
  kill "$SMI" 2>/dev/null
  tar czf "$OUT/results.tgz" -C "$W" . 2>/dev/null
  cp "$W/summary.txt" "$OUT/" 2>/dev/null
}
trap pack EXIT

export CUDA_PATH=/usr/local/cuda
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export NVILA_CRATE_DIR=$PWD/crates/nvila-model
export RUST_LOG=${RUST_LOG:-info} NO_COLOR=1
BENCH=crates/trainer/examples/bench_train_reference.py

mkdir -p /tmp/bin
for f in target/gpu/*.gz; do
  gunzip -c "$f" > "/tmp/bin/$(basename "$f" .gz)" && chmod +x "/tmp/bin/$(basename "$f" .gz)"
done
nvidia-smi > "$W/nvidia-smi.txt" 2>&1
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -lms 500 \
  > "$W/smi.csv" 2>&1 &
SMI=$!
stamp "start"

# 1. The 8B-shape checkpoint (random bf16 weights, real layout) and its dataset.
python3 crates/nvila-model/examples/bench_reference.py make-ckpt /tmp/ck > "$W/make_ckpt.log" 2>&1
stamp "8B checkpoint: exit $? ($(du -sh /tmp/ck | cut -f1))"
python3 $BENCH make-data /tmp/data --ckpt /tmp/ck > "$W/make_data.log" 2>&1

# 2. Training: PyTorch + PEFT (gradient checkpointing), then ours; same checkpoint, data, shapes.
timeout 170 python3 $BENCH torch --ckpt /tmp/ck --data /tmp/data --steps 4 \
  --out "$W/torch_train.json" > "$W/torch_train.log" 2>&1
stamp "torch training: exit $?"
OURS_LIMIT=$(( $(left) - 150 ))
python3 $BENCH ours --trainer /tmp/bin/trainer --ckpt /tmp/ck --data /tmp/data --steps 4 \
  --timeout $OURS_LIMIT --stacks-at 45 100 --log "$W/ours_train.log" \
  --out "$W/ours_train.json" --run-dir /tmp/run > "$W/ours_bench.log" 2>&1
stamp "ours training: exit $? (limit $OURS_LIMIT s)"

# 3. Inference (issue 3's table), PyTorch then ours, with what is left.
if [ "$(left)" -gt 60 ]; then
  timeout $(( $(left) - 90 )) python3 crates/nvila-model/examples/bench_reference.py bench /tmp/ck \
    --out "$W/torch_infer.json" > "$W/torch_infer.log" 2>&1
  stamp "torch inference: exit $?"
fi
if [ -x /tmp/bin/bench_device ] && [ "$(left)" -gt 30 ]; then
  timeout $(( $(left) - 10 )) /tmp/bin/bench_device --checkpoint /tmp/ck --device cuda:0 \
    --out "$W/ours_infer.json" > "$W/ours_infer.log" 2>&1
  stamp "ours inference: exit $?"
fi

{
  cat "$W/timeline.txt"
  for f in torch_train ours_train torch_infer ours_infer; do
    [ -f "$W/$f.json" ] && python3 - "$W/$f.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
r.pop("records", None); r.pop("command", None); r.pop("losses", None)
print(sys.argv[1].split("/")[-1], json.dumps(r))
EOF
  done
  tail -3 "$W/ours_train.log" 2>/dev/null
} > "$W/summary.txt"
echo "== summary"
cat "$W/summary.txt"
