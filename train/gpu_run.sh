#!/usr/bin/env bash
# One prepared run on a lent CUDA machine (see README "Training on a GPU"), in order of value:
#   1. checks the CUDA path, and that the shipped checkpoints give the CPU's pictures there;
#   2. benchmarks the paper presets: bf16 + torch.compile vs eager fp32 in the same process, with a profile of
#      the step's phases and operators, then lazy R1 and lazy R1 + CUDA graphs as variants in that process;
#      DDP's own overhead in a one-process world; the demo preset (eager, as the shipped models were trained);
#   3. trains/resumes the demo MNIST model inside what is left of the budget (a snapshot, with its joint-sample
#      measures, every 100 kimg);
#   4. leaves JSON, profiles, weights, stats, sheets and the log in $OUT (at most 8 files of <= 16 MiB).
# Data come from the packed copies in .pack/ (python -m biglearn.data pack ..., see README).
# Usage: OUT=/path BUDGET_S=540 bash train/gpu_run.sh
# A CPU rehearsal of the plumbing (tests/test_gpu_script.py): DEVICE=cpu BENCH_PRESET=tiny DEMO_PRESET=tiny
#   TRAIN_PRESET=tiny PRECISION=fp32 KIMG=0.064 MNIST_DATA=../shared/data/mnist/mnist.npz
set -uo pipefail
OUT=${OUT:-runs/gpu-out}
BUDGET_S=${BUDGET_S:-540}          # wall time for everything below
DEVICE=${DEVICE:-cuda}
BENCH_PRESET=${BENCH_PRESET:-paper}
DEMO_PRESET=${DEMO_PRESET:-demo}
TRAIN_PRESET=${TRAIN_PRESET:-demo}
MNIST_DATA=${MNIST_DATA:-.pack/mnist.npz}
PRECISION=${PRECISION:-bf16}       # of the training run
KIMG=${KIMG:-100000}               # training length cap; the budget normally ends the run first
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" runs
exec > >(tee -a "$OUT/log.txt") 2>&1
deadline=$((SECONDS + BUDGET_S))
left() { echo $((deadline - SECONDS)); }

echo "== 1. device check"
if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  $PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 1
fi
# The app on CUDA: the shipped checkpoints there against the CPU (a few seconds; the numbers go to the log).
timeout 60 $PY -m biglearn.bench --checkpoints --device "$DEVICE" || echo "checkpoint check failed (exit $?)"

bench() {  # name cap-seconds dataset preset extra-args...: one benchmark, capped by its cap and the budget
  local name=$1 cap=$2 dataset=$3 preset=$4; shift 4
  cap=$(( $(left) < cap ? $(left) : cap ))
  if [ "$cap" -lt 30 ]; then echo "== skip bench $name (${cap}s left)"; return; fi
  echo "== 2. bench $name (cap ${cap}s)"
  # The JSON is rewritten after every measurement: a bench cut by its cap keeps what it measured.
  timeout "$cap" $PY -m biglearn.bench --dataset "$dataset" --preset "$preset" --device "$DEVICE" \
    --iters 10 --warmup 3 --no-inference --json "$OUT/bench-$name.json" "$@" || echo "bench $name did not finish (exit $?)"
}

# What limits the fast step: the profile's phases and operators name it; the variants show what lazy R1 and CUDA
# graphs add (each variant compiles anew). Then DDP's overhead, then the demo preset as it trains here (eager).
lazy=(--variant r1_every=16 --variant r1_every=16,compile_mode=reduce-overhead)
bench celeba 200 celeba "$BENCH_PRESET" --profile "$OUT/profile-celeba.txt" "${lazy[@]}"
bench mnist 150 mnist "$BENCH_PRESET" "${lazy[@]}"
bench mnist-ddp 60 mnist "$BENCH_PRESET" --no-reference --no-compile --ddp
bench celeba-demo 60 celeba "$DEMO_PRESET" --no-compile

train_s=$(( $(left) - 60 ))  # start-up, data loading and the export take about a minute
if [ "$train_s" -ge 60 ]; then
  minutes=$($PY -c "print(round($train_s / 60, 2))")
  echo "== 3. train mnist ($TRAIN_PRESET) for $minutes min"
  $PY train/train_mnist.py --preset "$TRAIN_PRESET" --data "$MNIST_DATA" --out runs/gpu-mnist --device "$DEVICE" \
    --precision "$PRECISION" --no-compile --kimg "$KIMG" --max-minutes "$minutes" --resume auto --set tick_kimg=20 \
    --set snap_ticks=5 || echo "training mnist failed (exit $?)"
  if [ -f runs/gpu-mnist/export/model.safetensors ]; then
    cp runs/gpu-mnist/export/model.safetensors "$OUT/mnist-model.safetensors"
    sheets=$(cd runs/gpu-mnist && for kind in joint sheet-random sheet-raster; do ls samples/$kind-*.png 2>/dev/null | tail -1; done)
    tar -cf "$OUT/mnist-run.tar" -C runs/gpu-mnist export/config.json config.json stats.jsonl $sheets
  fi
else
  echo "== skip training (${train_s}s left)"
fi
echo "== done in ${SECONDS}s"; ls -la "$OUT"
