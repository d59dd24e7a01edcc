"""Beyond the paper: a critic of whether T belongs with S that cannot see the seam between them.

Every D of the recipe study tells real digits from chimeras (S of one real digit, T of another) by the seams and
the speckle, not by the digit: AUC 0.96-0.99 against real digits, 0.67-0.72 between same- and other-class chimeras
(docs/recipe-study.md), and G's completions follow the strokes at S's border without following S's digit. This
critic embeds the S part and the T part of an image *separately* (each view sees only its own patches, no overlap),
so the only way it can match a T to its S is by what they share: the digit, the face, the style. It learns that
on real images (InfoNCE over a batch that shares one (S, T)); G then pays when its T does not pick out its own S
among the batch's. D carries it (`DiscriminatorWithCritic`): it trains with D's optimizer, is saved with D, is
never shipped, and under DDP runs inside D's one forward of the update.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from biglearn.config import ModelConfig
from biglearn.nn.vit import Block, init_weights, sincos_positions, token_init_
from biglearn.patches import pixel_mask

CRITIC_DEPTH = 2
EMBEDDING_DIM = 64


class ConsistencyCritic(nn.Module):
    """One ViT for both views: (images, source_mask, target_mask) -> (S embeddings, T embeddings), each [B, 64],
    unit length. The views differ only in which patches they see and in a role token ([M_s] or [M_t])."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(cfg.channels, cfg.d_dim, cfg.patch_size, stride=cfg.patch_size)
        self.register_buffer("pos", sincos_positions(cfg.grid, cfg.d_dim)[None], persistent=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.d_dim))
        self.source_token = nn.Parameter(torch.zeros(1, 1, cfg.d_dim))
        self.target_token = nn.Parameter(torch.zeros(1, 1, cfg.d_dim))
        self.blocks = nn.ModuleList(Block(cfg.d_dim, cfg.d_heads, cfg.mlp_ratio) for _ in range(CRITIC_DEPTH))
        self.norm = nn.LayerNorm(cfg.d_dim)
        self.head = nn.Linear(cfg.d_dim, EMBEDDING_DIM)
        init_weights(self)
        for token in (self.cls_token, self.source_token, self.target_token):
            token_init_(token)

    def forward(self, images: torch.Tensor, source_mask: torch.Tensor,
                target_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = images.shape[0]
        views = torch.cat([source_mask, target_mask])                   # both views in one pass
        pixels = torch.cat([images, images]) * pixel_mask(views, self.cfg.patch_size)
        tokens = self.patch_embed(pixels).flatten(2).transpose(1, 2) + self.pos
        role = torch.cat([self.source_token.expand(batch, -1, -1), self.target_token.expand(batch, -1, -1)])
        x = torch.cat([self.cls_token.expand(2 * batch, -1, -1) + role, tokens], dim=1)
        key_mask = torch.cat([views.new_ones(2 * batch, 1), views], dim=1)  # a view never attends the other's patches
        for block in self.blocks:
            x = block(x, key_mask)
        embeddings = F.normalize(self.head(self.norm(x[:, 0])).float(), dim=1)
        return embeddings[:batch], embeddings[batch:]


class DiscriminatorWithCritic(nn.Module):
    """A discriminator and the consistency critic as one module: `forward` is the discriminator's, and with
    `critic_views=(images, source_mask, target_mask)` also returns the critic's embeddings of those, so that one
    call (one DDP forward) serves both."""

    def __init__(self, discriminator: nn.Module, cfg: ModelConfig):
        super().__init__()
        self.discriminator = discriminator
        self.critic = ConsistencyCritic(cfg)

    def forward(self, images: torch.Tensor, source_mask: torch.Tensor, target_mask: torch.Tensor,
                features: bool = False, critic_views: tuple[torch.Tensor, ...] | None = None):
        judged = self.discriminator(images, source_mask, target_mask, features=features)
        return judged if critic_views is None else (judged, self.critic(*critic_views))
