#!/usr/bin/env bash
# One prepared run on a lent CUDA machine (see README "Training on a GPU"):
#   1. checks the CUDA path, 2. benchmarks the paper presets (bf16 + torch.compile vs eager fp32),
#   3. trains/resumes the demo MNIST and CelebA checkpoints inside a time budget,
#   4. writes weights, stats, sample sheets and logs to $OUT in at most 8 files of <= 16 MiB.
# Data come from the packed copies in .pack/ (python -m biglearn.data pack ..., see README).
# Usage: OUT=/path BUDGET_S=520 bash train/gpu_run.sh
set -uo pipefail
OUT=${OUT:-runs/gpu-out}
BUDGET_S=${BUDGET_S:-520}          # wall time for everything below
BENCH_S=${BENCH_S:-130}            # cap for each benchmark
MNIST_SHARE=${MNIST_SHARE:-0.4}    # share of the training time that goes to MNIST
COMPILE=${COMPILE:---no-compile}   # short runs lose more to compilation than they gain
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" runs
exec > >(tee -a "$OUT/log.txt") 2>&1
deadline=$((SECONDS + BUDGET_S))

echo "== 1. CUDA check"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 1

echo "== 2. benchmark: paper CelebA"
timeout "$BENCH_S" $PY -m biglearn.bench --dataset celeba --preset paper --device cuda --iters 10 --warmup 3 \
  --json "$OUT/bench-celeba-paper.json" || echo "benchmark celeba/paper did not finish (exit $?)"

train_one() {  # name script data minutes
  local name=$1 script=$2 data=$3 minutes=$4
  echo "== 3. train $name for $minutes min"
  $PY "train/$script" --preset demo --data "$data" --out "runs/gpu-$name" --device cuda --precision bf16 \
    $COMPILE --kimg 100000 --max-minutes "$minutes" --resume auto --set tick_kimg=20 --set snap_ticks=25 || echo "training $name failed (exit $?)"
  if [ -f "runs/gpu-$name/export/model.safetensors" ]; then
    cp "runs/gpu-$name/export/model.safetensors" "$OUT/$name-model.safetensors"
    # config, stats and the newest sheets of each kind
    local sheets
    sheets=$(cd "runs/gpu-$name" && for kind in joint sheet-random sheet-raster; do ls samples/$kind-*.png 2>/dev/null | tail -1; done)
    tar -cf "$OUT/$name-run.tar" -C "runs/gpu-$name" export/config.json config.json stats.jsonl $sheets
  fi
}

left=$(( (deadline - SECONDS) / 60 ))
train_s=$(( deadline - SECONDS - 150 ))   # keep ~150 s for data loading, start-up, the MNIST benchmark
mnist_min=$($PY -c "print(round(max($train_s, 60) * $MNIST_SHARE / 60, 2))")
train_one mnist train_mnist.py .pack/mnist.npz "$mnist_min"
celeba_min=$($PY -c "print(round(max($deadline - $SECONDS - 110, 60) / 60, 2))")
train_one celeba train_celeba.py .pack/celeba64.tar "$celeba_min"

remaining=$((deadline - SECONDS))
if [ "$remaining" -gt 40 ]; then
  echo "== 2b. benchmark: paper MNIST (${remaining}s left)"
  timeout "$remaining" $PY -m biglearn.bench --dataset mnist --preset paper --device cuda --iters 10 --warmup 3 \
    --no-inference --json "$OUT/bench-mnist-paper.json" || echo "benchmark mnist/paper did not finish"
fi
echo "== done in ${SECONDS}s"; ls -la "$OUT"
