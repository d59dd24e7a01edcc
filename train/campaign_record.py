"""The record of a training campaign (checkpoints/campaigns/<name>/campaign.json), for train/campaign.sh.

    python train/campaign_record.py where CAMPAIGN_DIR TOTAL    -> "<K of the last saved stretch or none> <kimg seen>
                                                                    <kimg left of TOTAL, at least 1>"
    python train/campaign_record.py save CAMPAIGN_DIR EXPORT K  -> copy EXPORT there as the stretch begun at K kimg

kimg values print with %g, as the run folders are named (from-<K>kimg).
"""
from __future__ import annotations

import datetime
import json
import shutil
import sys
from pathlib import Path

RECORD = "campaign.json"
EXPORT_FILES = ("model.safetensors", "config.json")


def read(campaign: Path) -> dict:
    path = campaign / RECORD
    return json.loads(path.read_text()) if path.exists() else {"kimg": 0, "segments": []}


def where(campaign: Path, total_kimg: float) -> str:
    record = read(campaign)
    last = f"{record['segments'][-1]['from_kimg']:g}" if record["segments"] else "none"
    return f"{last} {record['kimg']:g} {max(1.0, total_kimg - record['kimg']):g}"


def save(campaign: Path, export: Path, start_kimg: float) -> str:
    """Copy the stretch's export (weights and config only) and record it; a stretch that resumed the folder of the
    last saved one replaces that entry."""
    stretch_kimg = json.loads((export / "config.json").read_text())["kimg"]
    record = read(campaign)
    campaign.mkdir(parents=True, exist_ok=True)
    for name in EXPORT_FILES:
        shutil.copyfile(export / name, campaign / name)
    segments = [s for s in record["segments"] if s["from_kimg"] != start_kimg]
    segments.append({"from_kimg": start_kimg, "kimg": stretch_kimg,
                     "saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
    record.update(kimg=round(start_kimg + stretch_kimg, 3), segments=segments)
    (campaign / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return f"saved {export} to {campaign}: the campaign's weights have seen {record['kimg']:g} kimg"


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "where":
        print(where(Path(argv[1]), float(argv[2])))
    elif len(argv) == 4 and argv[0] == "save":
        print(save(Path(argv[1]), Path(argv[2]), float(argv[3])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
