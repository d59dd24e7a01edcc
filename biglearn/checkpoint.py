"""Checkpoint I/O without pickled objects.

Training state: a plain dict of tensors, numbers and strings, written atomically (temp file + rename) and read
with `torch.load(weights_only=True)`. Sampling checkpoint: a folder with `model.safetensors` (G_ema weights)
and `config.json` (the ModelConfig plus provenance).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from biglearn.config import ModelConfig

FORMAT_VERSION = 1
CHECKPOINT_PATTERN = re.compile(r"checkpoint-(\d+)\.pt$")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or built for another model."""


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then rename over `path`: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would make checkpoints and exports unreadable to the user's group
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / f"checkpoint-{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    found = [p for p in Path(run_dir).glob("checkpoint-*.pt") if CHECKPOINT_PATTERN.search(p.name)]
    return sorted(found, key=lambda p: int(CHECKPOINT_PATTERN.search(p.name).group(1)))


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save({**state, "format_version": FORMAT_VERSION}, tmp))


TRAINING_STATE_KEYS = ("step", "images_seen", "rng_cpu", "config")  # what every trainer of the project saves


def load_training_state(path: Path, lazy: bool = False) -> dict[str, Any]:
    """lazy: map the file instead of reading it (tensors are read when touched), to look at its config cheaply."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=lazy)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except Exception as exc:
        # Only the first line: torch's message goes on to suggest weights_only=False, unsafe for untrusted files.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read training checkpoint {path} (truncated or not a checkpoint): "
                              f"{reason}") from exc
    missing = [k for k in TRAINING_STATE_KEYS if k not in state] if isinstance(state, dict) else TRAINING_STATE_KEYS
    if missing:
        raise CheckpointError(f"{path} is not a training checkpoint (it lacks {', '.join(missing)}); resume from a "
                              "checkpoint-*.pt of a run folder, not from an exported model")
    return state


def refuse_used_folder(run_dir: Path) -> None:
    """A new run must not start in a folder that holds another run: its saves would prune and overwrite it."""
    found = list_checkpoints(run_dir)
    if found:
        raise CheckpointError(f"{run_dir} already holds a run ({found[-1].name}); continue it with --resume auto, "
                              "or choose another --out")


def remove_stale_temp_files(run_dir: Path) -> None:
    """Half-written files of a run killed while saving (atomic_write's temp files; the real files are intact)."""
    for folder in (run_dir, run_dir / "export"):
        for stale in Path(folder).glob(".*.tmp"):
            stale.unlink(missing_ok=True)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)


def check_model_config(found: dict[str, Any], expected: Any, source: str) -> None:
    """Refuse a checkpoint whose model differs from `expected` (a model config dataclass) in any of its fields.

    A field the checkpoint does not name was added after it was written, and counts as its default (new fields
    default to the behaviour before them)."""
    defaults = {f.name: f.default for f in dataclasses.fields(expected)}
    differences = {k: (found.get(k, defaults[k]), v) for k, v in dataclasses.asdict(expected).items()
                   if found.get(k, defaults[k]) != v}
    if differences:
        shown = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in sorted(differences.items()))
        raise CheckpointError(f"{source} was trained for another model ({shown}); "
                              "pick the matching --preset or start a new --out")


def export_sampling_checkpoint(folder: Path, generator: torch.nn.Module, cfg: ModelConfig,
                               info: dict[str, Any] | None = None, dtype: torch.dtype = torch.float32) -> None:
    """Write G_ema weights as safetensors plus config.json (atomically, weights first)."""
    folder = Path(folder)
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in generator.state_dict().items()}
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp))
    meta = {"format_version": FORMAT_VERSION, "model": dataclasses.asdict(cfg), **(info or {})}
    atomic_write(folder / CONFIG_FILE, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))


def untouched_rng():
    """Around building a module that a checkpoint's weights then overwrite: its init draws from torch's global RNG,
    and loading a model must not shift the caller's random stream (a run that loads one, e.g. the snapshot judge,
    would otherwise not resume bit for bit)."""
    return torch.random.fork_rng(devices=[])


def read_checkpoint_folder(folder: Path, what: str = "sampling checkpoint") -> tuple[dict[str, Any], Path]:
    """(config.json as a dict, the path of model.safetensors) of a checkpoint folder, or a CheckpointError."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise CheckpointError(f"{folder} is not a {what} (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        meta = json.loads(config_path.read_text())
    except ValueError as exc:
        raise CheckpointError(f"cannot read {config_path}: {exc}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"cannot read {config_path}: not a JSON object")
    return meta, weights_path


def read_sampling_checkpoint(folder: Path) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    meta, weights_path = read_checkpoint_folder(folder)
    config_path = Path(folder) / CONFIG_FILE
    try:
        cfg = ModelConfig(**meta["model"])
        cfg.validate()
    except Exception as exc:
        raise CheckpointError(f"cannot read {config_path}: {exc}") from exc
    try:
        weights = load_file(weights_path)
    except Exception as exc:
        raise CheckpointError(f"cannot read {weights_path}: {exc}") from exc
    return cfg, weights, meta
