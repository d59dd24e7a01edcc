"""Pre-norm ViT blocks with key-padding or full attention masks, and fixed 2-D sin-cos positions."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sincos_positions(grid: int, dim: int) -> torch.Tensor:
    """[grid*grid, dim] fixed 2-D sin-cos embedding (half the channels encode rows, half columns)."""
    if dim % 4:
        raise ValueError(f"sin-cos positions need dim divisible by 4, got {dim}")
    quarter = dim // 4
    freqs = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    coords = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(rows), encode(cols)], dim=1).float()


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # mask, True where attending is allowed: [B, N] keys (same for every query) or [B, N, N] (query, key).
        attn_mask = None if mask is None else mask[:, None, None, :] if mask.ndim == 2 else mask[:, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


def init_weights(module: nn.Module) -> None:
    """ViT/MAE initialisation: xavier-uniform linears, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def token_init_(param: nn.Parameter) -> None:
    nn.init.normal_(param, std=0.02)
