"""Reference completions that need no model, to read the evaluator's completion agreement against.

- source_only: x_S as given, T left black (MNIST's background): what S alone tells the classifier.
- NearestFill: T copied from the pool image (the training split) closest to the image on S, the completion a
  lookup table makes. A generator whose completions agree with the label less often than this has not learnt
  to continue the strokes it is shown.
"""
from __future__ import annotations

import torch

from biglearn.figures import to_float


def source_only(images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """images [N, C, H, W] (uint8 or [0, 1]) with every pixel outside `keep` [N, 1, H, W] bool set to 0."""
    return to_float(images) * keep


class NearestFill:
    """Fills T from the `pool` image [M, C, H, W] of least squared distance on the kept pixels. The pool is
    converted once, so one evaluation can fill many S draws without redoing it."""

    def __init__(self, pool: torch.Tensor, chunk: int = 256, seed: int = 0):
        self.flat_pool = to_float(pool).flatten(1)                              # [M, D]
        self.pool_sq = self.flat_pool.square()
        self.chunk = chunk  # images at a time: bounds the memory to chunk x M distances
        self.seed = seed

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] with their pixels outside `keep` [N, 1, H, W] bool copied from the nearest pool
        image. Returns [N, C, H, W] in [0, 1]."""
        out = []
        # With S empty every pool image is equally near: draw one per image (a real image, as a joint sample by
        # lookup would be) rather than give every image the pool's first.
        anyone = torch.randint(len(self.flat_pool), (len(images),), generator=torch.Generator().manual_seed(self.seed))
        for start in range(0, len(images), self.chunk):
            x = to_float(images[start:start + self.chunk])
            kept = keep[start:start + self.chunk]
            m = kept.expand_as(x).flatten(1).float()                            # [n, D]
            # |m (x - y)|^2 without the per-image constant |m x|^2: |m y|^2 - 2 <m x, y>
            distance = m @ self.pool_sq.T - 2 * (m * x.flatten(1)) @ self.flat_pool.T   # [n, M]
            index = torch.where(kept.flatten(1).any(1), distance.argmin(dim=1), anyone[start:start + self.chunk])
            nearest = self.flat_pool[index].reshape(x.shape)
            out.append(torch.where(kept, x, nearest))
        return torch.cat(out)
