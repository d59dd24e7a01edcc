"""Differentiable colour augmentation for D's inputs (beyond the paper; an aid for GANs on small data sets).

Applied with random parameters to real and generated images alike (DiffAugment, Zhao et al. 2020).
Only per-pixel colour changes are used: geometric ones would move pixels across the S/T patch boundaries.
"""
from __future__ import annotations

import torch


def color_augment(x: torch.Tensor, visible: torch.Tensor, chunk: int, copies: int = 1) -> torch.Tensor:
    """Random brightness, saturation (RGB only) and contrast per image.

    x: [N, C, H, W] in [-1, 1]; visible: [N, 1, H, W] bool, the pixels D sees (S u T). Contrast pivots on the
    mean of the visible pixels, so pixels outside S u T cannot reach D through it.
    x is made of chunks of `chunk` images, each chunk `copies` times in a row ([a, a, b, b, ...]: the same
    images judged under two (S, T) pairs). The copies of an image share one draw, so Eq. (5)'s
    f(x; S2, T2) - f(x; S1, T1) compares one x, not two differently augmented ones.
    """
    n = x.shape[0]
    if n % (chunk * copies):
        raise ValueError(f"a batch of {n} images is not made of chunks of {chunk} images, {copies} copies each")
    rand = torch.rand(n // (chunk * copies), 1, chunk, 3, device=x.device, dtype=x.dtype)
    rand = rand.expand(-1, copies, -1, -1).reshape(n, 3, 1, 1)
    x = x + (rand[:, 0:1] - 0.5)
    if x.shape[1] == 3:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (rand[:, 1:2] * 2) + mean
    weight = visible.to(x.dtype)
    mean = (x * weight).sum(dim=(1, 2, 3), keepdim=True) / (weight.sum(dim=(1, 2, 3), keepdim=True)
                                                             * x.shape[1]).clamp(min=1)
    return (x - mean) * (rand[:, 2:3] + 0.5) + mean
