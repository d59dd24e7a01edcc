"""The universal model p_theta(X_t | X_S'') over X = (y, x-tokens): one transformer for every (S', T') and order.

Tokens share one vocabulary: image codes are 0..K-1 and label y is K + y. Slot j of the input holds the (j-1)-th
token of the prediction order (slot 0 is BOS) as token embedding + content position; slots that predict a target
also get a query: the modality's mask token ([M_y] for the label slot, [M_x] for an image token) + the target's
query position. Two position tables, because a slot carries two positions (what it holds, what it predicts) and a
sum of one table's entries could not tell them apart (as in sigma-GPT). See objective.py for the masks.
"""
from __future__ import annotations

import torch
from torch import nn

from biglearn.multimodal.config import NUM_LABELS, DigitsModelConfig
from biglearn.multimodal.objective import LABEL, attention_mask
from biglearn.nn.vit import Block, init_weights, layer_norm, linear, token_init_


class AnyOrderTransformer(nn.Module):
    def __init__(self, cfg: DigitsModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.vocab = cfg.codebook_size + NUM_LABELS
        length, dim = cfg.length, cfg.dim
        self.token_embed = nn.Embedding(self.vocab, dim)
        self.content_pos = nn.Parameter(torch.zeros(length, dim))
        self.query_pos = nn.Parameter(torch.zeros(length, dim))
        self.mask_tokens = nn.Parameter(torch.zeros(2, dim))      # [M_x], [M_y]
        self.bos = nn.Parameter(torch.zeros(dim))
        self.blocks = nn.ModuleList(Block(dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, self.vocab)
        init_weights(self)
        for param in (self.content_pos, self.query_pos, self.mask_tokens):
            token_init_(param)
        nn.init.normal_(self.token_embed.weight, std=0.02)
        # Which vocabulary entries each position may take: labels at position 0, codes elsewhere.
        allowed = torch.zeros(length, self.vocab, dtype=torch.bool)
        allowed[LABEL, cfg.codebook_size:] = True
        allowed[1:, :cfg.codebook_size] = True
        self.register_buffer("allowed", allowed, persistent=False)

    def embed(self, tokens: torch.Tensor, order: torch.Tensor, num_source: torch.Tensor,
              slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs of slots [B, Q] (indices per row) -> ([B, Q, D], the position each slot predicts [B, Q])."""
        held = order.gather(1, (slots - 1).clamp(min=0))                          # slot j holds X_order[j-1]
        content = self.token_embed(tokens.gather(1, held)) + self.content_pos[held]
        x = torch.where((slots == 0)[..., None], self.bos, content)              # slot 0 holds BOS
        predicts = order.gather(1, slots)
        query = self.mask_tokens[(predicts == LABEL).long()] + self.query_pos[predicts]
        return x + query * (slots >= num_source[:, None])[..., None], predicts

    def logits(self, x: torch.Tensor, predicts: torch.Tensor) -> torch.Tensor:
        """Final norm and head; wrong-modality entries are -inf."""
        return linear(self.head, layer_norm(self.norm, x)).masked_fill(~self.allowed[predicts], float("-inf"))

    def forward(self, tokens: torch.Tensor, order: torch.Tensor, num_source: torch.Tensor,
                slots: int | None = None) -> torch.Tensor:
        """tokens [B, L'] (unified ids, position layout), order [B, L'], num_source [B] -> logits [B, n, V].

        Row j is the distribution of the token at position order[:, j] (meaningful where j >= num_source); wrong-
        modality entries are -inf. `slots` = n <= L' computes only the first n slots, which is exact whenever
        n > max(num_source) (later slots are never seen by earlier ones).
        """
        b, length = tokens.shape
        n = length if slots is None else slots
        x, predicts = self.embed(tokens, order, num_source, torch.arange(n, device=tokens.device).expand(b, n))
        mask = attention_mask(num_source, n)
        for block in self.blocks:
            x = block(x, mask)
        return self.logits(x, predicts)

    # ---- incremental sampling: each new slot attends cached keys and values instead of recomputing the past
    def prefill(self, tokens: torch.Tensor, order: torch.Tensor,
                num_source: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Slots 0..|S'| of every row -> (logits [B, V] of slot |S'|, i.e. of t_1; a key/value cache for `extend`).

        Rows with a shorter S' also compute a few target slots from placeholder tokens; `extend` overwrites each
        of those cache entries before anything reads it.
        """
        b, length = tokens.shape
        n = int(num_source.max()) + 1
        slots = torch.arange(n, device=tokens.device).expand(b, n)
        x, predicts = self.embed(tokens, order, num_source, slots)
        mask = attention_mask(num_source, n)            # slots 0..n-1 see only each other
        cache = [block.attn.empty_cache(b, length, x) for block in self.blocks]
        for block, layer_cache in zip(self.blocks, cache):
            x = block.extend(x, slots, mask, layer_cache)
        rows = torch.arange(b, device=tokens.device)
        return self.logits(x[rows, num_source], predicts[rows, num_source]), cache

    def extend(self, tokens: torch.Tensor, order: torch.Tensor, num_source: torch.Tensor, slot: torch.Tensor,
               cache: list[torch.Tensor]) -> torch.Tensor:
        """The next slot [B] of every row (slot > |S'|, its held token already filled in) -> its logits [B, V].
        It sees every earlier slot: the cache must hold them all (from prefill and earlier extends)."""
        at = slot[:, None]
        x, predicts = self.embed(tokens, order, num_source, at)
        # [B, 1, V]: the cache up to the furthest row's slot; later entries are unwritten (or placeholders) anyway.
        # Additive (0 / -inf), so the blocks do not each convert a boolean mask.
        beyond = torch.arange(int(slot.max()) + 1, device=tokens.device)[None, None, :] > at[..., None]
        mask = torch.zeros(beyond.shape, device=tokens.device).masked_fill_(beyond, float("-inf"))
        for block, layer_cache in zip(self.blocks, cache):
            x = block.extend(x, at, mask, layer_cache)
        return self.logits(x[:, 0], predicts[:, 0])
