"""The (S, T) sampler of Table 3, with a per-sample ratio for every image in the batch.

For each sample b:
  |S1| / L            ~ Beta(0.5, 3)   (random subset, or the raster-order initial portion)
  |T1| / |L \\ S1|     ~ Beta(3, 0.5)   (random subset of the rest, never empty)
  |S2| / |S1 u T1|    ~ Beta(0.5, 3)   (random subset of U = S1 u T1, or its raster-order initial portion)
  T2 = U \\ S2                          (never empty)
so S1 u T1 = S2 u T2 as Eq. (5) requires. All masks are [B, L] bool: static shapes, no host syncs.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

import torch

from biglearn.patches import count_to_mask


@dataclass
class PairMasks:
    source1: torch.Tensor
    target1: torch.Tensor
    source2: torch.Tensor
    target2: torch.Tensor

    @cached_property
    def sources(self) -> torch.Tensor:
        """[2B, L]: S1 of every sample, then S2 (how the step lays out a batch judged under both pairs)."""
        return torch.cat([self.source1, self.source2])

    @cached_property
    def targets(self) -> torch.Tensor:
        """[2B, L]: T1, then T2."""
        return torch.cat([self.target1, self.target2])


def _beta(shape: tuple[float, float], batch: int, device: torch.device) -> torch.Tensor:
    a, b = shape
    conc1 = torch.full((batch,), float(a), device=device)
    conc0 = torch.full((batch,), float(b), device=device)
    return torch.distributions.Beta(conc1, conc0).sample()


def _subset(pool: torch.Tensor, ratio: torch.Tensor, raster: torch.Tensor, *, min_left: int) -> torch.Tensor:
    """Pick round(ratio * |pool|) members of each row's pool, keeping at least `min_left` members unpicked.

    Raster rows take the pool's first members in raster order; the others take a uniform random subset.
    """
    batch, length = pool.shape
    size = pool.sum(dim=1)
    count = torch.minimum((ratio * size).round().long(), (size - min_left).clamp(min=0))
    positions = torch.arange(length, device=pool.device, dtype=torch.float32).expand(batch, length)
    scores = torch.where(raster[:, None], positions / length, torch.rand(batch, length, device=pool.device))
    scores = torch.where(pool, scores, torch.full_like(scores, 2.0))  # non-members rank last
    return count_to_mask(count, scores) & pool


def sample_sources(batch: int, num_patches: int, *, source_beta=(0.5, 3.0), raster_prob: float = 0.0,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """S1 alone: (source masks [B, L], which rows took the raster-order initial portion [B]); never all of L."""
    device = torch.device(device)
    everything = torch.ones(batch, num_patches, dtype=torch.bool, device=device)
    raster = torch.rand(batch, device=device) < raster_prob
    return _subset(everything, _beta(source_beta, batch, device), raster, min_left=1), raster


def sample_pairs(batch: int, num_patches: int, *, source_beta=(0.5, 3.0), target_beta=(3.0, 0.5),
                 comm_beta=(0.5, 3.0), raster_prob: float = 0.0, device: torch.device | str = "cpu",
                 group: int = 1) -> PairMasks:
    """Draw (S1, T1) and the communication pair (S2, T2) for every sample of a batch.

    group > 1: one draw for each run of `group` consecutive samples (D's minibatch-std groups).
    """
    if group > 1:
        if batch % group:
            raise ValueError(f"a batch of {batch} does not split into groups of {group}")
        m = sample_pairs(batch // group, num_patches, source_beta=source_beta, target_beta=target_beta,
                         comm_beta=comm_beta, raster_prob=raster_prob, device=device)
        return PairMasks(*(getattr(m, f.name).repeat_interleave(group, dim=0) for f in fields(m)))
    device = torch.device(device)
    source1, raster = sample_sources(batch, num_patches, source_beta=source_beta, raster_prob=raster_prob,
                                     device=device)
    rest = ~source1
    # T1 is a random subset of L \ S1 with at least one patch.
    t_count = (_beta(target_beta, batch, device) * rest.sum(dim=1)).round().long().clamp(min=1)
    scores = torch.where(rest, torch.rand(batch, num_patches, device=device), 2.0)  # S1 ranks last
    target1 = count_to_mask(t_count, scores) & rest
    union = source1 | target1
    source2 = _subset(union, _beta(comm_beta, batch, device), raster, min_left=1)
    target2 = union & ~source2
    return PairMasks(source1, target1, source2, target2)
