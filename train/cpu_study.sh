#!/usr/bin/env bash
# The recipe study of issue 16 on the CPU: each variant of the `cpu` MNIST preset trained to the same kimg with the
# same seed and thread count, one after another, each resumable. Run it again (any session) to go on where it stopped.
#
#   DEADLINE=$(date -d '+120 min' +%s) THREADS=1 SEEDS="0" nohup bash train/cpu_study.sh > ~/biglearn-runs/study.log &
#
# Runs go to $RUNS/<variant>-s<seed> (default ~/biglearn-runs/study); python -m biglearn.study tabulates them.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-$HOME/biglearn-runs/study}
KIMG=${KIMG:-100}
THREADS=${THREADS:-1}
SEEDS=${SEEDS:-"0 1"}
# ONLY="a b": train just these variants (names as below), in the order listed here
ONLY=${ONLY:-}
DEADLINE=${DEADLINE:?set DEADLINE to the epoch second by which every run must have stopped}
PY=${PY:-.venv/bin/python}
LATENT="--set latent_dims=16 --set latent_regress=1"
# name|flags, in the order they are trained
VARIANTS=(
  "baseline|"
  "latent1|$LATENT"
  "latent1-map001-noclip-r1both|$LATENT --set mapping_lr_mult=0.01 --set grad_clip=0 --set r1_both_pairs=true"
  "modulation|--set noise_modulation=true"
  "latent1-modulation|$LATENT --set noise_modulation=true"
  "latent4|--set latent_dims=16 --set latent_regress=4"
  "latent1-batch32|$LATENT --set batch=32"
  "latent1-convd|$LATENT --set d_arch=conv"
  "latent1-uniform-s|$LATENT --set source_beta=1,1"
  "latent4-convd|--set latent_dims=16 --set latent_regress=4 --set d_arch=conv"
  "latent1-convd-groupmasks|$LATENT --set d_arch=conv --set group_masks=true"
  "latent1-convd-ms|$LATENT --set d_arch=conv --set mode_seeking=1"
  "latent1-recon10|$LATENT --set source_reconstruction=10"
  "latent4-batch32-recon3|--set latent_dims=16 --set latent_regress=4 --set batch=32 --set source_reconstruction=3"
  "latent1-batch32-recon2|$LATENT --set batch=32 --set source_reconstruction=2"
  "latent1-batch32-recon10-best4|$LATENT --set batch=32 --set source_reconstruction=10 --set reconstruction_samples=4"
  "latent1-batch32-recon30-best4|$LATENT --set batch=32 --set source_reconstruction=30 --set reconstruction_samples=4"
  "latent1-batch32-recon20-best2|$LATENT --set batch=32 --set source_reconstruction=20 --set reconstruction_samples=2"
  "latent1-batch32-mismatch1|$LATENT --set batch=32 --set mismatch_reals=1"
  "latent1-batch32-mismatch1-l1pre50|$LATENT --set batch=32 --set mismatch_reals=1 --set pretrain_l1_kimg=50"
  "latent1-batch32-mismatch1-g192|$LATENT --set batch=32 --set mismatch_reals=1 --set enc_dim=192 --set dec_dim=192 --set enc_depth=1 --set dec_depth=2"
  "latent1-batch32-mismatch1-coarse|$LATENT --set batch=32 --set mismatch_reals=1 --set d_scales=2"
  "latent1-batch32-mismatch1-fm1|$LATENT --set batch=32 --set mismatch_reals=1 --set feature_matching=1"
  "latent1-batch32-mismatch1-fm10|$LATENT --set batch=32 --set mismatch_reals=1 --set feature_matching=10"
  "latent1-batch32-mismatch1-d4|$LATENT --set batch=32 --set mismatch_reals=1 --set d_depth=4"
  "latent1-batch32-mismatch1-cvae10|$LATENT --set batch=32 --set mismatch_reals=1 --set latent_encoder=true --set encoded_reconstruction=10"
  "latent1-batch32-mismatch1-cvae10-kl01|$LATENT --set batch=32 --set mismatch_reals=1 --set latent_encoder=true --set encoded_reconstruction=10 --set encoded_kl=0.1"
  "latent1-batch32-mismatch4|$LATENT --set batch=32 --set mismatch_reals=4"
  "latent1-batch32-mismatch1-dlr4|$LATENT --set batch=32 --set mismatch_reals=1 --set d_lr_mult=4"
  "latent1-batch32-mismatch1-critic1|$LATENT --set batch=32 --set mismatch_reals=1 --set consistency_critic=true --set consistency=1"
  "latent1-batch32-mismatch1-onepair|$LATENT --set batch=32 --set mismatch_reals=1 --set pair_per_batch=true"
  "latent1-batch32-mismatch1-pool4|$LATENT --set batch=32 --set mismatch_reals=1 --set latent_pool=4"
)
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
for seed in $SEEDS; do
  for entry in "${VARIANTS[@]}"; do
    name=${entry%%|*}; flags=${entry#*|}
    if [[ -n $ONLY && " $ONLY " != *" $name "* ]]; then continue; fi
    out="$RUNS/$name-s$seed"
    left=$(( (DEADLINE - $(date +%s)) / 60 ))
    if (( left < 3 )); then echo "deadline reached before $name-s$seed"; exit 0; fi
    echo "== $name-s$seed ($left min left) $(date -u +%FT%TZ)"
    if [[ -d $out ]]; then
      $PY train/train_mnist.py --out "$out" --resume auto --kimg "$KIMG" --max-minutes "$left"
    else
      # shellcheck disable=SC2086  # flags are words on purpose
      $PY train/train_mnist.py --preset cpu --seed "$seed" --kimg "$KIMG" --out "$out" --max-minutes "$left" $flags
    fi
  done
done
