"""Patch geometry: images <-> patch sequences, and boolean patch masks <-> pixel masks.

Patches are numbered in raster order over a (grid x grid) layout, so index i sits at row i // grid, column i % grid.
"""
from __future__ import annotations

import torch


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, L, p*p*C] with L = (H/p)*(W/p), pixels ordered (p_row, p_col, channel)."""
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image {h}x{w} is not divisible into {p}x{p} patches")
    x = images.reshape(b, c, h // p, p, w // p, p)
    return torch.einsum("bchpwq->bhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """Inverse of `patchify` for square images: [B, L, p*p*C] -> [B, C, H, W]."""
    b, length, _ = patches.shape
    grid = int(round(length ** 0.5))
    if grid * grid != length:
        raise ValueError(f"{length} patches do not form a square grid")
    p = patch_size
    x = patches.reshape(b, grid, grid, p, p, channels)
    return torch.einsum("bhwpqc->bchpwq", x).reshape(b, channels, grid * p, grid * p)


def pixel_mask(patch_mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, L] bool -> [B, 1, H, W] bool, each patch flag repeated over its pixels."""
    b, length = patch_mask.shape
    grid = int(round(length ** 0.5))
    grid_mask = patch_mask.reshape(b, 1, grid, grid)
    return grid_mask.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


def mask_from_grid(grid: torch.Tensor) -> torch.Tensor:
    """A [g, g] (or [B, g, g]) boolean grid of kept patches -> [L] (or [B, L]) source mask."""
    grid = torch.as_tensor(grid, dtype=torch.bool)
    if grid.shape[-1] != grid.shape[-2]:
        raise ValueError(f"mask grid must be square, got {tuple(grid.shape)}")
    return grid.flatten(-2)


def count_to_mask(counts: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Per-sample top-k without ragged shapes: mark the `counts[b]` positions with the lowest `scores[b]`.

    counts: [B] integer, scores: [B, L] float. Ranks come from a double argsort (MAE's trick), so every sample
    may keep a different number of patches while all tensors stay [B, L].
    """
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < counts[:, None]


def random_mask(num_patches: int, ratio: float, *, batch: int = 1,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """[batch, L] masks with round(ratio * L) patches chosen uniformly at random."""
    count = torch.full((batch,), round(ratio * num_patches), dtype=torch.long)
    return count_to_mask(count, torch.rand(batch, num_patches, generator=generator))


def raster_mask(num_patches: int, ratio: float, *, batch: int = 1) -> torch.Tensor:
    """[batch, L] masks keeping the first round(ratio * L) patches in raster order (the paper's "initial portion")."""
    keep = torch.arange(num_patches) < round(ratio * num_patches)
    return keep.expand(batch, num_patches).clone()


class SourceMasks:
    """random_mask / raster_mask for a model with `num_patches` (the GAN's Completer, the digits model)."""

    num_patches: int

    def random_mask(self, ratio: float, *, batch: int = 1, seed: int | None = None) -> torch.Tensor:
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        return random_mask(self.num_patches, ratio, batch=batch, generator=generator)

    def raster_mask(self, ratio: float, *, batch: int = 1) -> torch.Tensor:
        return raster_mask(self.num_patches, ratio, batch=batch)
