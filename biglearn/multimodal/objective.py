"""Eq. (19): random (S', T') pairs over X = (y, x_1..x_49), each T' predicted one token at a time in a random order.

Positions: 0 is the label y, 1..49 the image tokens in raster order. A pair is stored as a prediction order
`order` [B, L'] (a permutation of the positions) and `num_source` [B] = |S'|: order[:, :m] is S' (ascending)
and order[:, m:] = (t_1, t_2, ...) is T' = L' minus S' in a random order. Every prefix (t_1..t_j) of that order is
itself a valid target set, so the full complement also trains every smaller T' (the marginals of Eq. 7).

The transformer reads the sequence [BOS, X_order[0], ..., X_order[L'-2]] (slot j holds the j-th token of the order,
shifted by one) and slot j predicts X_order[j]. `attention_mask` lets slot a see slot b when b <= a (earlier in the
order) or when both are in the source prefix (slots 0..m, BOS and S': S' has no internal order). Hence the
prediction of t_k at slot m + k - 1 sees exactly X_S' and t_1..t_{k-1}: the term log p(X_t_k | X_{S' u t_<k}) of
Eq. (19)'s inner sum over Xi_{S', T'}.
"""
from __future__ import annotations

import torch

from biglearn.multimodal.config import DigitsTrainConfig

LABEL = 0   # position of y


def pairs_from_sources(is_source: torch.Tensor, generator: torch.Generator | None = None, *,
                       label_first: bool = False, raster: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """is_source [B, L'] bool -> (order [B, L'], num_source [B]): S' ascending, then T' in a random order.

    label_first: when y is a target it comes first (t_1 = y), so slot |S'| gives p(y | X_S') itself.
    raster: T' in position order instead (y first, then image tokens row by row): one of the orders Eq. (19)
    trains, offered for sampling.
    """
    if is_source.all(dim=1).any():
        raise ValueError("T' is empty for some pair: at least one position must be generated")
    b, length = is_source.shape
    ascending = torch.arange(length, device=is_source.device).float() / length
    noise = ascending.expand(b, length) if raster else torch.rand(b, length, generator=generator,
                                                                   device=is_source.device)
    key = torch.where(is_source, ascending, 1.0 + noise)
    if label_first:
        key[:, LABEL] = torch.where(is_source[:, LABEL], key[:, LABEL], 1.0)
    order = key.argsort(dim=1)
    return order, is_source.sum(dim=1)


def sample_pairs(batch: int, cfg: DigitsTrainConfig, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """q(S', T') of Eq. (19). -> (order [B, L'], num_source [B]).

    A share `classify_prob` of pairs is S' = x, T' = {y}: classification, the one conditional a random prefix
    reaches rarely. The rest draw y into S' with `label_source_prob` (label-conditioned generation / completion)
    and |S' ∩ x| / 49 ~ Beta(source_beta), as a random subset or, with `raster_prob`, an initial raster portion.
    """
    n = cfg.model.num_image_tokens

    def uniform(*shape):
        return torch.rand(*shape, generator=generator, device=device)

    classify = uniform(batch) < cfg.classify_prob
    ratio = _beta(cfg.source_beta, batch, generator, device)
    count = (ratio * (n + 1)).floor().clamp(max=n).long()                     # 0..49 image sources
    raster = uniform(batch) < cfg.raster_prob
    rank = uniform(batch, n).argsort(dim=1).argsort(dim=1)                  # a random rank per image position
    rank = torch.where(raster[:, None], torch.arange(n, device=device).expand(batch, n), rank)
    image_source = (rank < count[:, None]) | classify[:, None]
    label_source = (uniform(batch) < cfg.label_source_prob) & ~classify & (count < n)
    return pairs_from_sources(torch.cat([label_source[:, None], image_source], dim=1), generator)


def _beta(params: tuple[float, float], batch: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """Beta(a, b) draws as X / (X + Y) of Gamma variates, so that an explicit generator can drive them."""
    a, b = (torch.full((batch,), float(p), device=device) for p in params)
    x = torch._standard_gamma(a, generator=generator)
    y = torch._standard_gamma(b, generator=generator)
    return x / (x + y)


def attention_mask(num_source: torch.Tensor, length: int) -> torch.Tensor:
    """[B, N, N] bool, True where slot a (row) may attend slot b (column); N = length slots (BOS + L'-1 tokens)."""
    slots = torch.arange(length, device=num_source.device)
    earlier = slots[None, :] <= slots[:, None]                                 # [N, N] causal
    in_prefix = slots[None, :] <= num_source[:, None]                         # [B, N]: BOS and S'
    return earlier[None] | (in_prefix[:, :, None] & in_prefix[:, None, :])


def target_slots(num_source: torch.Tensor, length: int) -> torch.Tensor:
    """[B, L'] bool: slot j carries a term of Eq. (19) (predicts a target) when j >= |S'|."""
    return torch.arange(length, device=num_source.device)[None, :] >= num_source[:, None]
