"""What every training loop of the project shares: counters, the NaN stop, ETA, and the per-tick report."""
from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import time
from pathlib import Path


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the run stops and its last good checkpoint is kept."""


@dataclasses.dataclass
class Progress:
    step: int = 0
    images_seen: int = 0


def past_time_limit(max_minutes: float, start_time: float) -> bool:
    """--max-minutes (0: no limit) has run out since `start_time`."""
    return bool(max_minutes) and time.time() - start_time > max_minutes * 60


def format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Reporter:
    """Status line, stats.jsonl and TensorBoard scalars (rank 0 only).

    Rows carry the optimizer step ("step"), TensorBoard's x axis. resumed_at: the step of the checkpoint the run
    starts from (0 for a new run); rows logged after it by an earlier, killed process are dropped, so that
    resuming does not log those ticks twice.
    """

    def __init__(self, run_dir: Path, enabled: bool, resumed_at: int):
        self.enabled = enabled
        self.writer = None
        self.stats_path = run_dir / "stats.jsonl"
        if enabled:
            self._drop_rows_after(resumed_at)
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resumed_at + 1)
            except ImportError:
                print("tensorboard is not installed: scalars go to stats.jsonl only", file=sys.stderr)

    def _drop_rows_after(self, step: int) -> None:
        if not self.stats_path.exists():
            return
        rows = self.stats_path.read_text().splitlines()
        kept = [row for row in rows if row.strip() and json.loads(row)["step"] <= step]
        if len(kept) != len(rows):
            self.stats_path.write_text("".join(row + "\n" for row in kept))

    def tick(self, record: dict, line: str) -> None:
        if not self.enabled:
            return
        with self.stats_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.writer.add_scalar(key, value, global_step=record["step"])
            self.writer.flush()
        print(line, flush=True)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


class StopRequest:
    """Ctrl-C (SIGINT) asks the loop to stop after the current step, with a checkpoint; a second Ctrl-C aborts.

    Only in the main thread of a one-process run: torchrun's ranks could stop at different steps and hang.
    """

    def __init__(self, enabled: bool):
        self.requested = False
        self.previous = None
        if enabled and threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping with a checkpoint after this step (Ctrl-C again to abort)", file=sys.stderr,
              flush=True)

    def close(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
