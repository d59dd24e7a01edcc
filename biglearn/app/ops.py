"""What the app asks of the model, on numpy images [S, S, C] uint8 and [grid, grid] bool masks.

Every function that runs the generator is wrapped in `gpu` (spaces.GPU on ZeroGPU, a no-op elsewhere).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from biglearn.app.models import gpu
from biglearn.inference import Completer
from biglearn.sheets import SHEET_RATIOS, ratio_sweep, tile

MAX_SAMPLES = 16


@dataclass
class Completion:
    image: np.ndarray       # the input x (S patches are taken from it)
    mask: np.ndarray        # [grid, grid] bool, True = kept
    completed: np.ndarray   # x_S pasted back exactly, x_T generated
    seed: int
    message: str
    seconds: float


def to_batch(images: list[np.ndarray]) -> torch.Tensor:
    """[S, S, C] uint8 arrays -> [B, C, S, S] uint8 tensor."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def to_arrays(batch: torch.Tensor) -> np.ndarray:
    """[B, C, S, S] float in [0, 1] -> [B, S, S, C] uint8."""
    return (batch.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def check_image(completer: Completer, image: np.ndarray) -> None:
    cfg = completer.cfg
    if image.shape != (cfg.image_size, cfg.image_size, cfg.channels):
        raise ValueError(f"this model takes {cfg.image_size}x{cfg.image_size}x{cfg.channels} images, "
                         f"got {'x'.join(map(str, image.shape))}")


def describe(mask: np.ndarray) -> str:
    kept, total = int(mask.sum()), mask.size
    if kept == total:
        return "All patches are kept (S is everything): nothing to generate, so the input is shown unchanged."
    if kept == 0:
        return f"S is empty: joint generation, all {total} patches sampled from p(x)."
    return f"Kept {kept} patches (S-ratio {kept / total:.2f}), generated {total - kept}."


@gpu
def complete(completer: Completer, image: np.ndarray, mask: np.ndarray, seed: int) -> Completion:
    check_image(completer, image)
    start = time.perf_counter()
    if mask.all():
        completed = image.copy()
    else:
        out = completer.complete(to_batch([image]), completer.mask_from_grid(mask), seed=int(seed))
        completed = to_arrays(out)[0]
    seconds = time.perf_counter() - start
    return Completion(image, mask.copy(), completed, int(seed), describe(mask), seconds)


@gpu
def samples(completer: Completer, image: np.ndarray, mask: np.ndarray, seed: int, count: int) -> np.ndarray:
    """`count` completions of the same x_S with different noises (drawn from one seed): [count, S, S, C]."""
    check_image(completer, image)
    count = int(np.clip(count, 1, MAX_SAMPLES))
    batch = to_batch([image] * count)
    return to_arrays(completer.complete(batch, completer.mask_from_grid(mask), seed=int(seed)))


@gpu
def sweep(completer: Completer, image: np.ndarray, mode: str, seed: int) -> np.ndarray:
    """The paper's Fig. 3 row: completions at S-ratio 0.0 ... 0.9 with one noise, then the input: [11, S, S, C]."""
    check_image(completer, image)
    return to_arrays(ratio_sweep(completer, to_batch([image]), mode, seed=int(seed)))


def sweep_strip(columns: np.ndarray) -> np.ndarray:
    """[N, S, S, C] uint8 -> one RGB strip with white gutters (the library's sheet layout)."""
    batch = torch.from_numpy(columns).permute(0, 3, 1, 2).float() / 255
    return tile(batch, len(columns))


def sweep_labels() -> list[str]:
    return [f"S-ratio {r:.1f}" for r in SHEET_RATIOS] + ["input"]


@gpu
def joint_sample(completer: Completer, seed: int) -> np.ndarray:
    """One x ~ p(x) (S empty), e.g. a face the model makes up."""
    cfg = completer.cfg
    blank = torch.zeros(1, cfg.channels, cfg.image_size, cfg.image_size)
    empty = torch.zeros(cfg.num_patches, dtype=torch.bool)
    return to_arrays(completer.complete(blank, empty, seed=int(seed)))[0]
