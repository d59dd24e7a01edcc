"""The universal discriminator f(x; S, T): a ViT with a CLS token and [M_s]/[M_t] role tokens (App. C)."""
from __future__ import annotations

import torch
from torch import nn

from biglearn.config import ModelConfig
from biglearn.nn.vit import Block, init_weights, sincos_positions, token_init_
from biglearn.patches import pixel_mask


class Discriminator(nn.Module):
    """Returns one logit per image. Pixels outside S u T are zeroed and their tokens are never attended to.

    Input patches overlap their neighbours by `d_overlap` pixels per side (ViTGAN's trick, App. D): a conv with
    kernel p + 2 * overlap and stride p keeps the token grid aligned with the generator's patches.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        kernel = cfg.patch_size + 2 * cfg.d_overlap
        self.patch_embed = nn.Conv2d(cfg.channels, cfg.d_dim, kernel, stride=cfg.patch_size, padding=cfg.d_overlap)
        self.register_buffer("pos", sincos_positions(cfg.grid, cfg.d_dim)[None], persistent=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.d_dim))
        self.source_token = nn.Parameter(torch.zeros(1, 1, cfg.d_dim))   # [M_s]
        self.target_token = nn.Parameter(torch.zeros(1, 1, cfg.d_dim))   # [M_t]
        self.blocks = nn.ModuleList(Block(cfg.d_dim, cfg.d_heads, cfg.mlp_ratio) for _ in range(cfg.d_depth))
        self.mbstd_group = cfg.d_mbstd_group
        if self.mbstd_group:
            self.mbstd_token = nn.Parameter(torch.zeros(1, 1, cfg.d_dim))
        self.norm = nn.LayerNorm(cfg.d_dim)  # kept: replacing D's last norm collapses training (App. D)
        self.head = nn.Linear(cfg.d_dim, 1)
        init_weights(self)
        for token in (self.cls_token, self.source_token, self.target_token):
            token_init_(token)
        if self.mbstd_group:
            nn.init.normal_(self.mbstd_token, std=1.0)

    def forward(self, images: torch.Tensor, source_mask: torch.Tensor, target_mask: torch.Tensor,
                features: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits [B]; with `features`, also each block's patch tokens (feature matching)."""
        visible = source_mask | target_mask
        images = images * pixel_mask(visible, self.cfg.patch_size)
        tokens = self.patch_embed(images).flatten(2).transpose(1, 2) + self.pos
        tokens = tokens + torch.where(source_mask[..., None], self.source_token, self.target_token)
        batch = images.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        key_mask = torch.cat([visible.new_ones(batch, 1), visible], dim=1)
        layers = []
        for i, block in enumerate(self.blocks):
            if self.mbstd_group and i == len(self.blocks) - 1:
                x = self._add_minibatch_std(x, visible)
            x = block(x, key_mask)
            layers.append(x[:, 1:])
        logits = self.head(self.norm(x[:, 0])).squeeze(1)
        return (logits, layers) if features else logits

    def _add_minibatch_std(self, x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Tell the CLS token how much the visible features vary within a group of consecutive images.

        Groups are consecutive so that a batch laid out as [real | fake | ...] chunks never mixes kinds.
        """
        batch, tokens, dim = x.shape
        group = self.mbstd_group
        if batch % group:  # a silent fallback would let R1 (b images) and the losses (6b) see different Ds
            raise ValueError(f"minibatch std needs a batch that is a multiple of d_mbstd_group={group}, got {batch}")
        feats = x[:, 1:].reshape(batch // group, group, tokens - 1, dim)
        weight = visible.reshape(batch // group, group, tokens - 1, 1).float()
        # The variance written out: Tensor.var over this small middle axis ran ~20x slower on the CPU (torch 2.14).
        variance = (feats - feats.mean(dim=1, keepdim=True)).square().mean(dim=1)
        std = (variance + 1e-8).sqrt()                                       # [B/g, N, dim]
        seen = weight.amin(dim=1)                                           # tokens visible in the whole group
        score = (std * seen).sum(dim=(1, 2)) / (seen.sum(dim=(1, 2)) * dim).clamp(min=1)
        score = score.repeat_interleave(group)[:, None, None]               # [B, 1, 1]
        cls = x[:, :1] + score * self.mbstd_token
        return torch.cat([cls, x[:, 1:]], dim=1)
