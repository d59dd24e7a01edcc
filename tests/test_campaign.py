"""train/campaign.sh: a campaign resumes its run folder, else goes on from its committed export, else starts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from conftest import REPO


def campaign(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RUNS": str(tmp_path / "runs"), "CAMPAIGNS": str(tmp_path / "campaigns"), "PY": sys.executable}
    return subprocess.run(["bash", str(REPO / "train" / "campaign.sh"), *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=REPO)


def planned(result: subprocess.CompletedProcess) -> dict:
    """The trainer's resolved config (--dry-run prints it as JSON after the script's own line)."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout[result.stdout.index("{"):])


def fake_export(folder: Path, kimg: float) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"kimg": kimg}))
    (folder / "model.safetensors").write_bytes(b"weights")


def test_a_campaign_starts_from_nothing_then_goes_on_from_its_saved_export(tmp_path):
    first = campaign(tmp_path, "celeba", "5", "--dry-run")
    assert "starting from nothing" in first.stdout
    cfg = planned(first)
    assert cfg["init_from"] == "" and cfg["kimg"] == 1000 and cfg["out"] == str(tmp_path / "runs/celeba/from-0kimg")
    assert cfg["mode_seeking"] == 1 and cfg["model"]["latent_dims"] == 16

    # the end of the stretch: its export is saved, and the run folder is then lost with the machine
    fake_export(tmp_path / "runs/celeba/from-0kimg/export", 170.5)
    saved = campaign(tmp_path, "celeba", "save")
    assert saved.returncode == 0, saved.stderr
    record = json.loads((tmp_path / "campaigns/celeba/campaign.json").read_text())
    assert record["kimg"] == 170.5 and [s["from_kimg"] for s in record["segments"]] == [0.0]
    assert (tmp_path / "campaigns/celeba/model.safetensors").read_bytes() == b"weights"

    second = campaign(tmp_path, "celeba", "5", "--dry-run")
    assert "going on from" in second.stdout
    cfg = planned(second)
    assert cfg["init_from"] == str(tmp_path / "campaigns/celeba") and cfg["d_warmup_kimg"] == 5
    assert cfg["lr"] == 5e-5 and cfg["d_lr_mult"] == 4
    assert cfg["kimg"] == 1000 - 170.5 and cfg["out"] == str(tmp_path / "runs/celeba/from-170.5kimg")

    # a second segment's save counts on from the first
    fake_export(tmp_path / "runs/celeba/from-170.5kimg/export", 100.0)
    assert campaign(tmp_path, "celeba", "save").returncode == 0
    record = json.loads((tmp_path / "campaigns/celeba/campaign.json").read_text())
    assert record["kimg"] == 270.5 and [s["from_kimg"] for s in record["segments"]] == [0.0, 170.5]


def fake_run_folder(run: Path, cfg: dict) -> None:
    """A run folder with one training checkpoint holding `cfg` (what --resume auto --dry-run reads)."""
    run.mkdir(parents=True, exist_ok=True)
    torch.save({"config": json.dumps({**cfg, "out": str(run)}), "step": 10, "images_seen": 1280,
                "rng_cpu": torch.get_rng_state()}, run / "checkpoint-00000010.pt")


def test_the_digits_campaign_adopts_both_parts_of_its_export_and_a_live_run_folder_is_resumed(tmp_path):
    cfg = planned(campaign(tmp_path, "digits", "5", "--dry-run"))
    assert cfg["tokenizer_from"] == "digits-multimodal" and cfg["transformer_from"] == "" and cfg["kimg"] == 3000
    fake_export(tmp_path / "runs/digits/from-0kimg/export", 600.0)
    assert campaign(tmp_path, "digits", "save").returncode == 0
    cfg = planned(campaign(tmp_path, "digits", "5", "--dry-run"))
    exported = str(tmp_path / "campaigns/digits")
    assert cfg["tokenizer_from"] == cfg["transformer_from"] == exported and cfg["kimg"] == 2400
    # the next stretch's run folder (started from the export) is resumed, not restarted
    run = tmp_path / "runs/digits/from-600kimg"
    fake_run_folder(run, cfg)
    resumed = campaign(tmp_path, "digits", "5", "--dry-run")
    assert "resuming" in resumed.stdout and planned(resumed)["out"] == str(run)


def test_a_surviving_folder_of_the_last_saved_stretch_goes_on_and_its_save_replaces_its_entry(tmp_path):
    first = tmp_path / "runs/celeba/from-0kimg"
    fake_export(first / "export", 100.0)
    assert campaign(tmp_path, "celeba", "save").returncode == 0
    fake_run_folder(first, planned(campaign(tmp_path, "celeba", "5", "--dry-run")))   # the folder survived
    resumed = campaign(tmp_path, "celeba", "5", "--dry-run")
    assert "resuming" in resumed.stdout and planned(resumed)["out"] == str(first)
    (first / "export/config.json").write_text(json.dumps({"kimg": 250.0}))            # it went on to 250 kimg
    assert campaign(tmp_path, "celeba", "save").returncode == 0
    record = json.loads((tmp_path / "campaigns/celeba/campaign.json").read_text())
    assert record["kimg"] == 250.0 and [(s["from_kimg"], s["kimg"]) for s in record["segments"]] == [(0.0, 250.0)]


def test_an_unknown_campaign_is_refused(tmp_path):
    result = campaign(tmp_path, "cats", "5")
    assert result.returncode == 2 and "unknown campaign cats" in result.stderr


def test_the_mnist_campaign_goes_on_from_the_shipped_weights_then_from_its_own_export(tmp_path):
    first = campaign(tmp_path, "mnist", "5", "--dry-run")
    assert "starting from the shipped mnist" in first.stdout
    cfg = planned(first)
    assert cfg["init_from"] == "mnist" and cfg["d_warmup_kimg"] == 40 and cfg["kimg"] == 300
    assert cfg["model"]["d_scales"] == 2 and cfg["mismatch_reals"] == 1 and cfg["batch"] == 32
    assert cfg["lr"] == 5e-5 and cfg["d_lr_mult"] == 4
    fake_export(tmp_path / "runs/mnist/from-0kimg/export", 40.0)
    assert campaign(tmp_path, "mnist", "save").returncode == 0
    cfg = planned(campaign(tmp_path, "mnist", "5", "--dry-run"))
    assert cfg["init_from"] == str(tmp_path / "campaigns/mnist") and cfg["kimg"] == 260
