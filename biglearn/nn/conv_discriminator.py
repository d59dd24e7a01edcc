"""A convolutional f(x; S, T), beyond the paper (App. C: other architectures can serve big learning).

At CPU scale the ViT discriminator lets single-pixel speckle and strokes that do not join across patch borders
through (docs/recipe-study.md); 3x3 convolutions see exactly those. The roles of the patches reach the net as two
indicator maps beside the image, the conv analogue of adding [M_s]/[M_t] tokens to the patch embeddings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from biglearn.config import ModelConfig
from biglearn.patches import pixel_mask

SMALLEST_MAP = 8  # halve the resolution until the feature map is at most this wide


class ConvDiscriminator(nn.Module):
    """Returns one logit per image; pixels outside S u T are zeroed, as in the ViT discriminator.

    Each resolution has a 3x3 conv and a strided 3x3 conv that halves it and doubles the channels, ending at
    `d_dim` channels on a map at most SMALLEST_MAP wide; then the minibatch std map (when `d_mbstd_group`), a
    3x3 conv and a linear layer over the whole map. `d_depth`, `d_heads` and `d_overlap` belong to the ViT.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        halvings, size = 0, cfg.image_size
        while size > SMALLEST_MAP:
            size, halvings = (size + 1) // 2, halvings + 1
        width = max(cfg.d_dim >> halvings, 8)
        layers: list[nn.Module] = [nn.Conv2d(cfg.channels + 2, width, 3, padding=1)]
        for _ in range(halvings):
            wider = min(width * 2, cfg.d_dim)
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.Conv2d(width, wider, 3, stride=2, padding=1)]
            width = wider
        self.convs = nn.ModuleList(layers)
        self.mbstd_group = cfg.d_mbstd_group
        self.final = nn.Conv2d(width + (1 if self.mbstd_group else 0), cfg.d_dim, 3, padding=1)
        self.hidden = nn.Linear(cfg.d_dim * size * size, cfg.d_dim)
        self.head = nn.Linear(cfg.d_dim, 1)

    def forward(self, images: torch.Tensor, source_mask: torch.Tensor, target_mask: torch.Tensor,
                features: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits [B]; with `features`, also each conv layer's activations (feature matching)."""
        source = pixel_mask(source_mask, self.cfg.patch_size).to(images.dtype)
        target = pixel_mask(target_mask, self.cfg.patch_size).to(images.dtype)
        x = torch.cat([images * (source + target).clamp(max=1), source, target], dim=1)
        layers = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            layers.append(x)
        if self.mbstd_group:
            x = self._add_minibatch_std(x)
        x = F.leaky_relu(self.final(x), 0.2)
        logits = self.head(F.leaky_relu(self.hidden(x.flatten(1)), 0.2)).squeeze(1)
        return (logits, layers) if features else logits

    def _add_minibatch_std(self, x: torch.Tensor) -> torch.Tensor:
        """StyleGAN's statistic as one more feature map: how much the features vary within a group of consecutive
        images (consecutive, so that a batch laid out as [real | fake | ...] chunks never mixes kinds)."""
        batch, channels, height, width = x.shape
        group = self.mbstd_group
        if batch % group:  # a silent fallback would let R1 (b images) and the losses (6b) see different Ds
            raise ValueError(f"minibatch std needs a batch that is a multiple of d_mbstd_group={group}, got {batch}")
        feats = x.reshape(batch // group, group, channels, height, width)
        variance = (feats - feats.mean(dim=1, keepdim=True)).square().mean(dim=1)
        score = (variance + 1e-8).sqrt().mean(dim=(1, 2, 3)).repeat_interleave(group)   # [B]
        return torch.cat([x, score[:, None, None, None].expand(batch, 1, height, width)], dim=1)
