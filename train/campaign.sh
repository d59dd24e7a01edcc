#!/usr/bin/env bash
# One working stretch of a training campaign that spans sessions (checkpoints/campaigns/README.md): resume the run
# folder when it is there; when it is gone, go on from the campaign's committed export; with neither, start.
#
#   bash train/campaign.sh celeba MINUTES [trainer flags ...]    # issue 16: the `cpu` CelebA GAN
#   bash train/campaign.sh digits MINUTES [trainer flags ...]    # issue 17: the `wide` multi-modal digits model
#   bash train/campaign.sh celeba save                           # end of a stretch: commit this export
#
# Run folders go to $RUNS/<campaign>/from-<K>kimg (default RUNS=~/biglearn-runs), K the campaign's kimg where the
# segment began: one continuous run, resumed bit for bit while its folder lasts. `save` copies the segment's export
# (weights and config, never D or optimizer state) to checkpoints/campaigns/<campaign>/ and adds the segment to its
# campaign.json (CAMPAIGNS=DIR to use another folder than checkpoints/campaigns). One thread (THREADS=N to change).
# Extra flags reach the trainer (e.g. --dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?which campaign: celeba or digits}
minutes=${2:?minutes this stretch may train, or save}
shift 2
RUNS=${RUNS:-$HOME/biglearn-runs}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
exported=${CAMPAIGNS:-checkpoints/campaigns}/$name
case $name in
  celeba)  # G from the export; a fresh D learns alone first
    trainer=train/train_celeba.py total=1000
    base=(--preset cpu --seed 0 --set latent_dims=16 --set latent_regress=4 --set mode_seeking=1 --set batch=32)
    fresh=()
    from_export=(--set "init_from=$exported" --set d_warmup_kimg=5) ;;
  digits)  # tokenizer and transformer from the export, a fresh optimizer
    trainer=train/train_digits.py total=3000
    base=(--preset wide --seed 0)
    fresh=(--set tokenizer_from=digits-multimodal)
    from_export=(--set "tokenizer_from=$exported" --set "transformer_from=$exported") ;;
  *) echo "unknown campaign $name (celeba or digits)" >&2; exit 2 ;;
esac
done_kimg=0
if [[ -f $exported/campaign.json ]]; then
  done_kimg=$($PY -c "import json, sys; print(json.load(open(sys.argv[1]))['kimg'])" "$exported/campaign.json")
fi
out=$RUNS/$name/from-${done_kimg}kimg

if [[ $minutes == save ]]; then
  exec $PY - "$out/export" "$exported" "$done_kimg" <<'EOF'
import datetime, json, shutil, sys
from pathlib import Path
export, target, done = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
segment_kimg = json.loads((export / "config.json").read_text())["kimg"]
campaign_file = target / "campaign.json"
campaign = json.loads(campaign_file.read_text()) if campaign_file.exists() else {"kimg": 0, "segments": []}
target.mkdir(parents=True, exist_ok=True)
for name in ("model.safetensors", "config.json"):
    shutil.copyfile(export / name, target / name)
campaign["segments"].append({"from_kimg": done, "kimg": segment_kimg,
                             "saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
campaign["kimg"] = round(done + segment_kimg, 3)
campaign_file.write_text(json.dumps(campaign, indent=2) + "\n")
print(f"saved {export} to {target}: the campaign's G has seen {campaign['kimg']} kimg")
EOF
fi

if compgen -G "$out/checkpoint-*.pt" > /dev/null; then
  echo "$name: resuming $out"
  exec $PY $trainer --out "$out" --resume auto --max-minutes "$minutes" "$@"
fi
left=$($PY -c "import sys; print(max(1.0, float(sys.argv[1]) - float(sys.argv[2])))" "$total" "$done_kimg")
if [[ $done_kimg == 0 ]]; then
  echo "$name: starting from nothing, $left kimg"
  start=("${base[@]}" "${fresh[@]}")
else
  echo "$name: no run folder at $out; going on from $exported ($done_kimg kimg), $left kimg to go"
  start=("${base[@]}" "${from_export[@]}")
fi
exec $PY $trainer "${start[@]}" --kimg "$left" --out "$out" --max-minutes "$minutes" "$@"
