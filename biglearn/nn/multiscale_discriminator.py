"""f(x; S, T) at two scales, beyond the paper: pix2pixHD's multi-scale discriminator, with the patch roles kept.

At CPU scale every D tells G's completions from real digits on seams and single-pixel speckle, and G's completions
follow the strokes at S's border without following S's digit (docs/recipe-study.md). A second D that sees the image
average-pooled 2x cannot win on speckle, so its gradient is about the shape of the whole.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from biglearn.config import ModelConfig


class MultiScaleDiscriminator(nn.Module):
    """Returns [B, 2] logits: column 0 from the image, column 1 from it pooled 2x. Each column is one D's logit, so
    the batch-mean losses train each D on its own, weighted equally.

    The coarse D reads patches half as wide (and half the overlap) so that its token grid, and the (S, T) masks, are
    the fine D's.
    """

    def __init__(self, cfg: ModelConfig, discriminator: Callable[[ModelConfig], nn.Module]):
        super().__init__()
        single = dataclasses.replace(cfg, d_scales=1)
        coarse = dataclasses.replace(single, image_size=cfg.image_size // 2, patch_size=cfg.patch_size // 2,
                                     d_overlap=cfg.d_overlap // 2)
        self.fine, self.coarse = discriminator(single), discriminator(coarse)

    def forward(self, images: torch.Tensor, source_mask: torch.Tensor, target_mask: torch.Tensor,
                features: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits [B, 2]; with `features`, also both Ds' layer features (the fine D's first)."""
        fine = self.fine(images, source_mask, target_mask, features=features)
        coarse = self.coarse(F.avg_pool2d(images, 2), source_mask, target_mask, features=features)
        if not features:
            return torch.stack([fine, coarse], dim=1)
        return torch.stack([fine[0], coarse[0]], dim=1), fine[1] + coarse[1]
