"""Sample sheets in the style of the paper's Fig. 3 and plain grids of joint samples."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from biglearn.inference import Completer

SHEET_RATIOS = tuple(round(0.1 * i, 1) for i in range(10))


def tile(images: torch.Tensor, columns: int, pad: int = 1) -> np.ndarray:
    """[N, C, H, W] in [0, 1] -> one uint8 RGB image with `columns` images per row and a white gutter."""
    n, c, h, w = images.shape
    rows = -(-n // columns)
    canvas = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, dtype=np.uint8)
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    pixels = pixels.expand(-1, 3, -1, -1) if c == 1 else pixels
    for i, img in enumerate(pixels.permute(0, 2, 3, 1).numpy()):
        r, col = divmod(i, columns)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = img
    return canvas


def ratio_sweep(completer: Completer, images: torch.Tensor, mode: str, *, seed: int = 0,
                ratios=SHEET_RATIOS) -> torch.Tensor:
    """Fig. 3: for every image one row of completions at each S-ratio (same noise along the row) + ground truth.

    Returns [N * (len(ratios) + 1), C, H, W] in [0, 1], row-major.
    """
    n = images.shape[0]
    noise = completer.noise(n, seed)
    columns = []
    for i, ratio in enumerate(ratios):
        if mode == "raster":
            mask = completer.raster_mask(ratio, batch=n)
        elif mode == "random":
            mask = completer.random_mask(ratio, batch=n, seed=seed * 1000 + i)
        else:
            raise ValueError(f"mode must be 'random' or 'raster', got {mode!r}")
        columns.append(completer.complete(images, mask, noise=noise))
    columns.append(images.float() / 255 if images.dtype == torch.uint8 else images.float())
    return torch.stack(columns, dim=1).flatten(0, 1)


def save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_training_sheets(completer: Completer, images: torch.Tensor, folder: Path, tag: str, seed: int = 0) -> None:
    """Fig. 3 sheets for random and raster S, and a grid of joint samples (S empty, generated only)."""
    for mode in ("random", "raster"):
        sweep = ratio_sweep(completer, images, mode, seed=seed)
        save_png(tile(sweep, len(SHEET_RATIOS) + 1), folder / f"sheet-{mode}-{tag}.png")
    empty = torch.zeros(completer.num_patches, dtype=torch.bool)
    blank = torch.zeros(64, completer.cfg.channels, completer.cfg.image_size, completer.cfg.image_size)
    joint = completer.complete(blank, empty, seed=seed + 1)
    save_png(tile(joint, 8), folder / f"joint-{tag}.png")
