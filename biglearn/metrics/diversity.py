"""Adaptive generation diversity (paper §4.1): how much completions of one x_S vary, as the S-ratio r grows.

For each r and each image: draw K noises, complete with the same S, then measure on the target pixels T
  - diversity: the mean RMS distance over all K(K-1)/2 pairs of completions;
  - error: the mean RMS distance of a completion to the ground truth.
The paper's claim holds when diversity falls monotonically with r (Spearman's rho near -1).
The sweep needs only the `Completer` interface (random_mask, raster_mask, noise, complete, cfg), so a stub
sampler can stand in for a model in tests.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from biglearn.patches import pixel_mask


def complete_in_batches(completer, images: torch.Tensor, source_mask: torch.Tensor, noise: torch.Tensor,
                        batch: int = 256) -> torch.Tensor:
    """completer.complete over chunks of `batch` images (bounded memory): [N, C, S, S] -> [N, C, S, S] in [0, 1]."""
    return torch.cat([completer.complete(images[i:i + batch], source_mask[i:i + batch], noise=noise[i:i + batch])
                      for i in range(0, len(images), batch)])


def joint_samples(completer, n: int, seed: int, batch: int = 256) -> torch.Tensor:
    """n samples with S empty: [n, C, S, S] in [0, 1]."""
    cfg = completer.cfg
    blank = torch.zeros(n, cfg.channels, cfg.image_size, cfg.image_size)
    empty = torch.zeros(n, completer.num_patches, dtype=torch.bool)
    return complete_in_batches(completer, blank, empty, completer.noise(n, seed), batch)


def _rms_over_target(diff_sq_sum: torch.Tensor, target_count: torch.Tensor) -> torch.Tensor:
    return (diff_sq_sum / target_count.clamp_min(1)).sqrt()


def mean_pairwise_distance(samples: torch.Tensor, target: torch.Tensor) -> float:
    """samples [N, K, C, H, W] (K completions per image), target [N, 1, H, W] bool -> mean pairwise RMS on T."""
    k, c = samples.shape[1:3]
    if k < 2:
        raise ValueError("need at least 2 completions per image to measure diversity")
    flat = (samples.double() * target[:, None]).flatten(2)                 # [N, K, C*H*W], zero outside T
    count = target.flatten(1).sum(1).double() * c                          # [N] values on T per image
    squared = torch.cdist(flat, flat).square()                             # [N, K, K]
    pairs = torch.triu_indices(k, k, offset=1)
    rms = _rms_over_target(squared[:, pairs[0], pairs[1]], count[:, None])  # [N, pairs]
    return rms.mean().item()


def error_to_truth(samples: torch.Tensor, truth: torch.Tensor, target: torch.Tensor) -> float:
    """samples [N, K, C, H, W], truth [N, C, H, W] in [0, 1], target [N, 1, H, W] -> mean RMS error on T."""
    c = samples.shape[2]
    diff = (samples.double() - truth.double()[:, None]) * target[:, None]
    count = target.flatten(1).sum(1).double() * c
    return _rms_over_target(diff.square().flatten(2).sum(2), count[:, None]).mean().item()


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks with ties sharing their average rank."""
    order = values.argsort()
    ranks = torch.empty_like(values)
    ranks[order] = torch.arange(1, len(values) + 1, dtype=values.dtype)
    for value in values.unique():
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation; NaN when either sequence is constant."""
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    if x.shape != y.shape or len(x) < 2:
        raise ValueError("need two sequences of equal length >= 2")
    rx, ry = _ranks(x) - (len(x) + 1) / 2, _ranks(y) - (len(y) + 1) / 2
    denominator = (rx.square().sum() * ry.square().sum()).sqrt()
    return (rx @ ry / denominator).item() if denominator > 0 else math.nan


def source_masks(completer, mode: str, ratio: float, count: int, seed: int) -> torch.Tensor:
    """[count, L] source masks: random S (seeded) or raster S (the first patches in raster order)."""
    if mode == "random":
        return completer.random_mask(ratio, batch=count, seed=seed)
    if mode == "raster":
        return completer.raster_mask(ratio, batch=count)
    raise ValueError(f"mode must be 'random' or 'raster', got {mode!r}")


def diversity_sweep(completer, images: torch.Tensor, ratios: Sequence[float], *, k: int = 8, mode: str = "random",
                    seed: int = 0, batch: int = 256) -> dict:
    """Diversity and error on T for each ratio; images [N, C, S, S] in [0, 1] (or uint8).

    Each image keeps one S per ratio for all K noises, so only the noise varies between its completions.
    Returns {'ratios', 'diversity', 'error', 'spearman_rho', 'k', 'images'}.
    """
    images = torch.as_tensor(images)
    truth = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    n = len(truth)
    repeated = truth.repeat_interleave(k, dim=0)                            # [N*K, C, S, S], image-major
    diversity, error = [], []
    for i, ratio in enumerate(ratios):
        mask = source_masks(completer, mode, ratio, n, seed * 1000 + i)    # [N, L]
        noise = completer.noise(n * k, seed * 1000 + 500 + i)
        out = complete_in_batches(completer, repeated, mask.repeat_interleave(k, dim=0), noise, batch)
        samples = out.reshape(n, k, *out.shape[1:])
        target = ~pixel_mask(mask, completer.cfg.patch_size)              # [N, 1, S, S], True on T
        diversity.append(mean_pairwise_distance(samples, target))
        error.append(error_to_truth(samples, truth, target))
    return {"ratios": list(ratios), "diversity": diversity, "error": error,
            "spearman_rho": spearman_rho(list(ratios), diversity), "k": k, "images": n}
