"""Distances between two sets of feature vectors: Fréchet distance (FID's formula) and KID.

Both take [N, D] arrays from any encoder; the MNIST evaluation feeds the digit classifier's penultimate layer.
The matrix square root comes from symmetric eigendecompositions, so no scipy is needed at run time.
"""
from __future__ import annotations

import torch


def _as_float64(x) -> torch.Tensor:
    x = torch.as_tensor(x).double()
    if x.ndim != 2:
        raise ValueError(f"expected features [N, D], got {tuple(x.shape)}")
    return x


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(a, b) -> float:
    """||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^1/2) between Gaussians fitted to a [N, D] and b [M, D].

    tr((C_a C_b)^1/2) = tr((C_a^1/2 C_b C_a^1/2)^1/2), whose argument is symmetric PSD: eigenvalues stay real.
    """
    a, b = _as_float64(a), _as_float64(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    if min(len(a), len(b)) < 2:
        raise ValueError("need at least 2 samples per set")
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    root_a = _sqrt_psd(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    mean_term = (a.mean(0) - b.mean(0)).square().sum()
    return (mean_term + cov_a.trace() + cov_b.trace() - 2 * cross).clamp_min(0).item()


def _polynomial_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 with the cubic kernel k(u, v) = (u.v / D + 1)^3 (Binkowski et al. 2018)."""
    m, d = x.shape
    k_xx, k_yy, k_xy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    off_diagonal = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return off_diagonal - 2 * k_xy.mean()


def kernel_inception_distance(a, b, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
                              ) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over random equal-size subsets of a and b.

    Unlike the Fréchet distance it has no bias from the sample size, so small evaluations stay comparable.
    Subsets hold at most half of each set: subsets of the whole set would all be the same images reordered,
    giving the same value and a spread of 0.
    """
    a, b = _as_float64(a), _as_float64(b)
    size = min(subset_size, len(a) // 2, len(b) // 2)
    if size < 2:
        raise ValueError("need at least 2 samples per set")
    generator = torch.Generator().manual_seed(seed)
    values = torch.stack([
        _polynomial_mmd2(a[torch.randperm(len(a), generator=generator)[:size]],
                         b[torch.randperm(len(b), generator=generator)[:size]])
        for _ in range(subsets)])
    return values.mean().item(), (values.std().item() if subsets > 1 else 0.0)
