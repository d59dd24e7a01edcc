"""The command line shared by train/train_mnist.py and train/train_celeba.py."""
from __future__ import annotations

import argparse
import sys

from biglearn.checkpoint import CheckpointError
from biglearn.config import add_train_arguments, config_from_args
from biglearn.data import DataError


def main(dataset: str, default_data: str, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Train a BigLearn-GAN on {dataset}.")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(dataset, args)
    except ValueError as exc:
        parser.error(str(exc))
    if not cfg.data:
        cfg.data = default_data
    from biglearn.trainer import train  # torch-heavy imports only when training
    return run_training(train, cfg, args.dry_run)


def run_training(train, cfg, dry_run: bool) -> int:
    """`--dry-run` prints the resolved config; otherwise train, turning the user's problems into a message + 2."""
    if dry_run:
        print(cfg.to_json())
        return 0
    from biglearn.progress import TrainingDiverged
    try:
        train(cfg)
    except (DataError, CheckpointError, TrainingDiverged) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
