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
from biglearn.multimodal.objective import LABEL, attention_mask, target_slots
from biglearn.nn.vit import Block, init_weights, token_init_


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

    def forward(self, tokens: torch.Tensor, order: torch.Tensor, num_source: torch.Tensor,
                slots: int | None = None) -> torch.Tensor:
        """tokens [B, L'] (unified ids, position layout), order [B, L'], num_source [B] -> logits [B, n, V].

        Row j is the distribution of the token at position order[:, j] (meaningful where j >= num_source); wrong-
        modality entries are -inf. `slots` = n <= L' computes only the first n slots, which is exact whenever
        n > max(num_source) (later slots are never seen by earlier ones): sampling uses it to skip the future.
        """
        b, length = tokens.shape
        n = length if slots is None else slots
        held = tokens.gather(1, order[:, :n - 1])                                 # tokens in slots 1..n-1
        content = self.token_embed(held) + self.content_pos[order[:, :n - 1]]
        x = torch.cat([self.bos.expand(b, 1, -1), content], dim=1)                # [B, n, D]
        predicts = order[:, :n]                                                   # position each slot predicts
        modality = (predicts == LABEL).long()
        query = self.mask_tokens[modality] + self.query_pos[predicts]
        x = x + query * target_slots(num_source, n)[..., None]
        mask = attention_mask(num_source, n)
        for block in self.blocks:
            x = block(x, mask)
        logits = self.head(self.norm(x))
        return logits.masked_fill(~self.allowed[predicts], float("-inf"))
