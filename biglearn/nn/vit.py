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

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None,
                queries: torch.Tensor | None = None) -> torch.Tensor:
        """queries: optional [B, Q] row indices; only those rows are attended from (every row is still a key)."""
        if mask is not None and mask.ndim == 3 and queries is not None:
            raise ValueError("query rows can only be combined with a key-padding mask [B, N]")
        b, n, d = x.shape
        head_dim = d // self.heads
        if queries is None:
            q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        else:
            (w_q, w_kv), (b_q, b_kv) = self.qkv.weight.split([d, 2 * d]), self.qkv.bias.split([d, 2 * d])
            k, v = F.linear(x, w_kv, b_kv).reshape(b, n, 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
            q = F.linear(take_rows(x, queries), w_q, b_q).reshape(b, -1, self.heads, head_dim).transpose(1, 2)
        # mask, True where attending is allowed: [B, N] keys (same for every query) or [B, N, N] (query, key).
        attn_mask = None if mask is None else mask[:, None, None, :] if mask.ndim == 2 else mask[:, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, -1, d))

    def extend(self, x: torch.Tensor, at: torch.Tensor, mask: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        """Attention for new rows x [B, Q, D] at indices at [B, Q] of a sequence whose keys and values are cached.

        cache: keys and values in one tensor [2, B, heads, N, head_dim] (one write per step instead of two); the new
        rows' keys and values are written into it (in place) before they attend the cached rows that mask [B, Q, V]
        allows (boolean, True = attend, or additive). Only the first V <= N rows are read: a sampler passes the
        prefix written so far, not all N.
        """
        b, count, d = x.shape
        head_dim = d // self.heads
        qkv = linear(self.qkv, x).view(b, count, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)  # [3, B, H, Q, hd]
        cache.scatter_(3, at[None, :, None, :, None].expand(2, -1, self.heads, -1, head_dim), qkv[1:])
        visible = cache[:, :, :, :mask.shape[-1]]
        out = F.scaled_dot_product_attention(qkv[0], visible[0], visible[1], attn_mask=mask[:, None])
        return linear(self.proj, out.transpose(1, 2).reshape(b, count, d))

    def empty_cache(self, batch: int, length: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(2, batch, self.heads, length, self.qkv.in_features // self.heads)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, queries: torch.Tensor | None = None,
                modulation: torch.Tensor | None = None) -> torch.Tensor:
        """[B, N, dim] -> [B, N, dim], or with queries ([B, Q] row indices) only those rows: [B, Q, dim].

        Restricting the rows is exact: a row's output depends on the other rows only as keys and values. Inference
        uses it in the last block, whose other rows would be thrown away. `modulation` [B, N, 4 * dim]: a per-row
        scale and shift after each of the two LayerNorms, LN(x) * (1 + scale) + shift (ViTGAN's self-modulated
        LayerNorm).
        """
        normed = self.norm1(x)
        if modulation is not None:
            scale1, shift1, after_attention = modulation.split([x.shape[-1], x.shape[-1], 2 * x.shape[-1]], dim=-1)
            normed = normed * (1 + scale1) + shift1
        if queries is not None:
            x = take_rows(x, queries)
            if modulation is not None:
                after_attention = take_rows(after_attention, queries)
        x = x + self.attn(normed, mask, queries)
        normed = self.norm2(x)
        if modulation is not None:
            scale2, shift2 = after_attention.chunk(2, dim=-1)
            normed = normed * (1 + scale2) + shift2
        return x + self.mlp(normed)

    def extend(self, x: torch.Tensor, at: torch.Tensor, mask: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        """Incremental decoding: forward() for the rows x [B, Q, dim] at indices at [B, Q], given a key/value
        cache of the other rows (see Attention.extend). Equal to those rows of forward() on the whole sequence
        once the cache holds every row they may attend.

        A sampler calls this once per token for a few rows, where each call's fixed cost outweighs its arithmetic:
        the layers' functions are called on their parameters, without the modules' dispatch."""
        x = x + self.attn.extend(layer_norm(self.norm1, x), at, mask, cache)
        return x + linear(self.mlp[2], F.gelu(linear(self.mlp[0], layer_norm(self.norm2, x))))


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """layer(x) without the module call (see Block.extend)."""
    return F.linear(x, layer.weight, layer.bias)


def layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """norm(x) without the module call (see Block.extend)."""
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def row_index(mask: torch.Tensor) -> torch.Tensor:
    """[B, N] bool with the same count K in every row -> [B, K] indices of its True entries, in order.

    Checks the counts (a device sync on a GPU; inference only): with unequal rows the reshape could succeed and
    silently mix rows.
    """
    counts = mask.sum(dim=1)
    if mask.shape[0] and not bool((counts == counts[0]).all()):
        raise ValueError(f"every row needs the same number of selected entries, got counts {counts.tolist()}")
    return mask.nonzero()[:, 1].reshape(mask.shape[0], -1)


def take_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, N, D], index [B, K] -> [B, K, D]."""
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


def scatter_rows(rows: torch.Tensor, index: torch.Tensor, length: int) -> torch.Tensor:
    """The inverse of take_rows: [B, length, D] zeros with rows [B, K, D] placed at index [B, K]."""
    out = rows.new_zeros(rows.shape[0], length, rows.shape[-1])
    return out.scatter(1, index[..., None].expand(-1, -1, rows.shape[-1]), rows)


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
