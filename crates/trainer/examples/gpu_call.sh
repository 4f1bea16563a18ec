#!/usr/bin/env bash
# One call on the H200 machine (docs/gpu.md): issue 4's training benchmark at the NVILA-Lite-8B
# shape, ours beside PyTorch + PEFT, then the inference benchmark (issue 3's table) if time is
# left.
#
#   run: [GOLDEN=1] [RESUME=1] [TRAIN=0] [TORCH=0] [INFER=0] [STEPS=N] [VARIANTS="flags;flags"] \
#        bash crates/trainer/examples/gpu_call.sh      (carry target/gpu, built here with
#        cargo build --release -p trainer -p nvila-model --features trainer/cuda,nvila-model/cuda
#        --bins --examples; trainer, bench_device and/or golden_device gzipped into target/gpu/)
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

# Knobs (environment): GOLDEN=1 first runs the tiny golden comparisons on CUDA (bf16, f32);
# TORCH=0 skips the PyTorch training reference; VARIANTS lists trainer flag sets separated by
# ';' (one training run each, "" = defaults); STEPS optimizer steps per run; INFER=0 skips
# the inference benchmark.
GOLDEN=${GOLDEN:-0} TORCH=${TORCH:-1} INFER=${INFER:-1} STEPS=${STEPS:-4}
VARIANTS=${VARIANTS:-""}
# RESUME=1 runs gpu_resume.py (tiny model: two uninterrupted runs, one killed and resumed);
# TRAIN=0 skips the 8B checkpoint and everything that needs it.
RESUME=${RESUME:-0} TRAIN=${TRAIN:-1}
if [ "$TRAIN" = 0 ]; then TORCH=0; INFER=0; fi

if [ "$RESUME" = 1 ]; then
  timeout 240 python3 crates/trainer/examples/gpu_resume.py --trainer /tmp/bin/trainer \
    --out "$W/resume.json" > "$W/resume_driver.log" 2>&1
  stamp "resume on cuda: exit $?"
fi

# 1. The 8B-shape checkpoint (random bf16 weights, real layout) in the background; meanwhile
#    the tiny golden comparisons if asked.
CK=
if [ "$TRAIN" = 1 ]; then
  python3 crates/nvila-model/examples/bench_reference.py make-ckpt /tmp/ck > "$W/make_ckpt.log" 2>&1 &
  CK=$!
fi
if [ "$GOLDEN" = 1 ] && [ -x /tmp/bin/golden_device ]; then
  for dt in bf16 f32; do
    timeout 100 /tmp/bin/golden_device --device cuda:0 --dtype $dt > "$W/golden_$dt.log" 2>&1
    stamp "golden $dt: exit $?"
  done
fi
if [ "$TRAIN" = 1 ]; then
  wait $CK
  stamp "8B checkpoint: exit $? ($(du -sh /tmp/ck | cut -f1))"
  python3 $BENCH make-data /tmp/data --ckpt /tmp/ck > "$W/make_data.log" 2>&1
fi

# 2. Training: PyTorch + PEFT (gradient checkpointing), then ours; same checkpoint, data, shapes.
if [ "$TORCH" = 1 ]; then
  timeout 170 python3 $BENCH torch --ckpt /tmp/ck --data /tmp/data --steps "$STEPS" \
    --out "$W/torch_train.json" > "$W/torch_train.log" 2>&1
  stamp "torch training: exit $?"
fi
IFS=';' read -r -a SETS <<< "$VARIANTS"
[ ${#SETS[@]} -eq 0 ] && SETS=("")
[ "$TRAIN" = 0 ] && SETS=()
N=${#SETS[@]}
for i in "${!SETS[@]}"; do
  RESERVE=$(( INFER == 1 ? 150 : 15 ))
  LIMIT=$(( ($(left) - RESERVE) / (N - i) ))
  NAME=ours_train; [ "$i" -gt 0 ] && NAME=ours_train_$i
  python3 $BENCH ours --trainer /tmp/bin/trainer --ckpt /tmp/ck --data /tmp/data --steps "$STEPS" \
    --timeout $LIMIT --stacks-at 30 --log "$W/$NAME.log" --extra="${SETS[$i]}" \
    --out "$W/$NAME.json" --run-dir /tmp/run_$i > "$W/${NAME}_bench.log" 2>&1
  stamp "ours training [${SETS[$i]}]: exit $? (limit $LIMIT s)"
done

# 3. Inference (issue 3's table), PyTorch then ours, with what is left.
if [ "$INFER" = 1 ] && [ "$(left)" -gt 60 ]; then
  timeout $(( $(left) - 90 )) python3 crates/nvila-model/examples/bench_reference.py bench /tmp/ck \
    --out "$W/torch_infer.json" > "$W/torch_infer.log" 2>&1
  stamp "torch inference: exit $?"
fi
if [ "$INFER" = 1 ] && [ -x /tmp/bin/bench_device ] && [ "$(left)" -gt 30 ]; then
  timeout $(( $(left) - 10 )) /tmp/bin/bench_device --checkpoint /tmp/ck --device cuda:0 \
    --out "$W/ours_infer.json" > "$W/ours_infer.log" 2>&1
  stamp "ours inference: exit $?"
fi

{
  cat "$W/timeline.txt"
  tail -n 4 "$W"/golden_*.log 2>/dev/null
  cat "$W/resume.json" 2>/dev/null
  for f in "$W"/torch_train.json "$W"/ours_train*.json "$W"/torch_infer.json "$W"/ours_infer.json; do
    [ -f "$f" ] && python3 - "$f" <<'EOF'
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
