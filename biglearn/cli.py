"""The command line shared by train/train_mnist.py and train/train_celeba.py."""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

from biglearn.checkpoint import CheckpointError, list_checkpoints, load_training_state
from biglearn.config import DEFAULT_PRESET, add_train_arguments, config_from_args, default_out
from biglearn.data import DataError
from biglearn.inference import resolve_device


def main(dataset: str, default_data: str, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Train a BigLearn-GAN on {dataset}.")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        out = Path(args.out or default_out(dataset, args.preset or DEFAULT_PRESET))
        cfg = config_from_args(dataset, args, saved_config(args.resume, out))
        resolve_device(cfg.device)
    except ValueError as exc:  # CheckpointError included
        parser.error(str(exc))
    if not cfg.data:
        cfg.data = default_data
    from biglearn.trainer import train  # torch-heavy imports only when training
    return run_training(train, cfg, args.dry_run)


def saved_config(resume: str | None, out: Path) -> dict[str, Any] | None:
    """The config stored in the checkpoint that --resume names (auto: the newest in the run folder `out`), if any.

    Every trainer's command line starts from it when resuming, so that `--resume auto` alone continues a run with
    its own settings."""
    if not resume:
        return None
    older: list[Path] = []
    if resume == "auto":
        found = list_checkpoints(out)
        if not found:
            return None  # a first run started with --resume auto
        *older, path = found
    else:
        path = Path(resume)
    try:
        return json.loads(load_training_state(path, lazy=True)["config"])  # the trainer reads the weights
    except CheckpointError as exc:
        if older:  # e.g. the newest was cut short by a full disk
            raise CheckpointError(f"{exc}; the older {older[-1]} may be intact: pass --resume {older[-1]}") from exc
        raise


def run_training(train, cfg, dry_run: bool) -> int:
    """`--dry-run` prints the resolved config; otherwise train, turning the user's problems into a message + 2."""
    if dry_run:
        try:
            print(cfg.to_json(), flush=True)
        except BrokenPipeError:  # e.g. `--dry-run | head`: the reader took what it wanted; no traceback at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    from biglearn.progress import TrainingDiverged
    try:
        train(cfg)
    except (DataError, CheckpointError, TrainingDiverged) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        free_distributed_networks()
    return 0


def free_distributed_networks() -> None:
    """Free the finished run's networks while the interpreter is still whole.

    A DDP wrapper keeps its process group, and gloo's worker threads, alive until it is freed, and the networks sit in
    reference cycles, so without this they are freed at interpreter shutdown: a worker that then releases a tensor
    asks for the GIL, Python ends that thread, and the process aborts ("terminate called without an active
    exception", 1 run in 10 of a two-rank DDP script that exits this way, 0 in 40 after a collection).
    """
    gc.collect()
