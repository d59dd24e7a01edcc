#!/usr/bin/env bash
# One working stretch of a training campaign that spans sessions (checkpoints/campaigns/README.md): resume the run
# folder when it is there; when it is gone, go on from the campaign's committed export; with neither, start.
#
#   bash train/campaign.sh celeba MINUTES [trainer flags ...]    # issue 16: the `cpu` CelebA GAN
#   bash train/campaign.sh digits MINUTES [trainer flags ...]    # issue 17: the `wide` multi-modal digits model
#   bash train/campaign.sh mnist MINUTES [trainer flags ...]     # issue 16: the shipped `mnist` trained on
#   bash train/campaign.sh celeba save                           # end of a stretch: commit this export
#
# Run folders go to $RUNS/<campaign>/from-<K>kimg (default RUNS=~/biglearn-runs), K the campaign's kimg where the
# segment began: one continuous run, resumed bit for bit while its folder lasts. `save` copies the segment's export
# (weights and config, never D or optimizer state) to checkpoints/campaigns/<campaign>/ and adds the segment to its
# campaign.json (CAMPAIGNS=DIR to use another folder than checkpoints/campaigns). One thread (THREADS=N to change).
# Extra flags reach the trainer (e.g. --dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?which campaign: celeba, digits or mnist}
minutes=${2:?minutes this stretch may train, or save}
shift 2
RUNS=${RUNS:-$HOME/biglearn-runs}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
exported=${CAMPAIGNS:-checkpoints/campaigns}/$name
case $name in
  celeba)  # G from the export; a fresh D learns alone first. Since 586 kimg G at half the lr and D at twice it, as
           # for mnist: the probe's roughness fell faster, the evaluator's 64 px level did not (checkpoints/celeba/
           # README.md, fifth stretch); a campaign started afresh would use it from the start, unmeasured
    trainer=train/train_celeba.py total=1000 fresh_from=nothing
    base=(--preset cpu --seed 0 --set latent_dims=16 --set latent_regress=4 --set mode_seeking=1 --set batch=32
          --set lr=5e-5 --set d_lr_mult=4)
    fresh=()
    from_export=(--set "init_from=$exported" --set d_warmup_kimg=5) ;;
  digits)  # tokenizer and transformer from the export, a fresh optimizer
    trainer=train/train_digits.py total=3000 fresh_from="nothing (the shipped tokenizer)"
    base=(--preset wide --seed 0)
    fresh=(--set tokenizer_from=digits-multimodal)
    from_export=(--set "tokenizer_from=$exported" --set "transformer_from=$exported") ;;
  mnist)  # the shipped model's recipe (its card), G from the shipped weights or the export, a fresh D alone for
          # 40 kimg (beside this G a fresh D stays at chance for ~20 kimg), then G at half the lr and D at twice it:
          # at equal rates G undid what D had learned within 4 kimg (checkpoints/mnist/README.md)
    trainer=train/train_mnist.py total=300 fresh_from="the shipped mnist"
    base=(--preset cpu --seed 0 --set latent_dims=16 --set latent_regress=1 --set batch=32 --set mismatch_reals=1
          --set d_scales=2 --set d_warmup_kimg=40 --set lr=5e-5 --set d_lr_mult=4)
    fresh=(--set init_from=mnist)
    from_export=(--set "init_from=$exported") ;;
  *) echo "unknown campaign $name (celeba, digits or mnist)" >&2; exit 2 ;;
esac
# K of the stretch saved last (its folder may have survived), the kimg the campaign's weights have seen, and left
read -r last_kimg done_kimg left < <($PY train/campaign_record.py where "$exported" "$total")
out=$RUNS/$name/from-${done_kimg}kimg
# The last saved stretch's folder, still there, goes on bit for bit (its next `save` replaces its entry).
if [[ $last_kimg != none ]] && compgen -G "$RUNS/$name/from-${last_kimg}kimg/checkpoint-*.pt" > /dev/null; then
  out=$RUNS/$name/from-${last_kimg}kimg
fi

if [[ $minutes == save ]]; then
  start_kimg=${out##*/from-}
  exec $PY train/campaign_record.py save "$exported" "$out/export" "${start_kimg%kimg}"
fi

if compgen -G "$out/checkpoint-*.pt" > /dev/null; then
  echo "$name: resuming $out"
  exec $PY $trainer --out "$out" --resume auto --max-minutes "$minutes" "$@"
fi
if [[ $done_kimg == 0 ]]; then  # nothing saved yet
  echo "$name: starting from $fresh_from, $left kimg"
  start=("${base[@]}" "${fresh[@]}")
else
  echo "$name: no run folder at $out; going on from $exported ($done_kimg kimg), $left kimg to go"
  start=("${base[@]}" "${from_export[@]}")
fi
exec $PY $trainer "${start[@]}" --kimg "$left" --out "$out" --max-minutes "$minutes" "$@"
