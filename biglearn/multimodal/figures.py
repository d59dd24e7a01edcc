"""Sheets of the multi-modal model: Fig. 11 (joint and label-conditioned samples), reconstructions, completions."""
from __future__ import annotations

import numpy as np
import torch

from biglearn.metrics.diversity import source_masks
from biglearn.multimodal.config import NUM_LABELS
from biglearn.multimodal.model import DigitsModel
from biglearn.multimodal.tokenizer import VQTokenizer, to_unit
from biglearn.sheets import tile


def fig11(model: DigitsModel, columns: int = 10, joint_rows: int = 4, *, temperature: float = 1.0,
          guidance: float = 0.0, seed: int = 0) -> np.ndarray:
    """Fig. 11: `joint_rows` rows of samples of p(x, y), then one row of p(x | y) per digit y = 0..9."""
    joint, _ = model.generate(joint_rows * columns, temperature=temperature, guidance=guidance, seed=seed)
    labels = torch.arange(NUM_LABELS).repeat_interleave(columns)
    conditioned, _ = model.generate(len(labels), labels=labels, temperature=temperature, guidance=guidance,
                                    seed=seed + 1)
    gap = torch.ones(columns, 1, *joint.shape[-2:])
    return tile(torch.cat([joint, gap, conditioned]), columns)


def reconstructions(tokenizer: VQTokenizer, images: torch.Tensor, columns: int = 10) -> np.ndarray:
    """Pairs of rows: real digits, then their tokenizer reconstructions."""
    was_training = tokenizer.training
    tokenizer.eval()
    recon = tokenizer.decode(tokenizer.encode(images)).cpu()
    tokenizer.train(was_training)
    real = to_unit(images).cpu()
    rows = [t for start in range(0, len(real), columns)
            for t in (real[start:start + columns], recon[start:start + columns])]
    return tile(torch.cat(rows), columns)


def completion_sweep(model: DigitsModel, images: torch.Tensor, ratios, *, labels=None, mode: str = "random",
                     temperature: float = 1.0, guidance: float = 0.0, seed: int = 0) -> torch.Tensor:
    """One row per image: completions at each S-ratio of the token grid, then the image. -> [N*(R+1), 1, 28, 28]."""
    columns = []
    for i, ratio in enumerate(ratios):
        keep = source_masks(model, mode, ratio, len(images), seed * 1000 + i)
        columns.append(model.complete(images, keep, labels=labels, temperature=temperature, guidance=guidance,
                                      seed=seed)[0])
    columns.append(to_unit(images).cpu())
    return torch.stack(columns, dim=1).flatten(0, 1)
