"""Differentiable colour augmentation for D's inputs (beyond the paper; an aid for GANs on small data sets).

Applied with independent random parameters to real and generated images alike (DiffAugment, Zhao et al. 2020).
Only per-pixel colour changes are used: geometric ones would move pixels across the S/T patch boundaries.
"""
from __future__ import annotations

import torch


def color_augment(x: torch.Tensor) -> torch.Tensor:
    """x: [B, C, H, W] in [-1, 1]. Random brightness, saturation (RGB only) and contrast per image."""
    b = x.shape[0]
    rand = torch.rand(b, 3, 1, 1, device=x.device, dtype=x.dtype)
    x = x + (rand[:, 0:1] - 0.5)
    if x.shape[1] == 3:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (rand[:, 1:2] * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (rand[:, 2:3] + 0.5) + mean
