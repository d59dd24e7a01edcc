"""What every training loop of the project shares: counters, the NaN stop, ETA, and the per-tick report."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the run stops and its last good checkpoint is kept."""


@dataclasses.dataclass
class Progress:
    step: int = 0
    images_seen: int = 0


def format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Reporter:
    """Status line, stats.jsonl and TensorBoard scalars (rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                print("tensorboard is not installed: scalars go to stats.jsonl only", file=sys.stderr)
        self.stats_path = run_dir / "stats.jsonl"

    def tick(self, record: dict, line: str) -> None:
        if not self.enabled:
            return
        with self.stats_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "kimg":
                    self.writer.add_scalar(key, value, global_step=int(record["kimg"] * 1000))
            self.writer.flush()
        print(line, flush=True)

    def close(self) -> None:
        if self.writer:
            self.writer.close()
