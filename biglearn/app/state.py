"""`Session`: what one browser session holds on the "Complete images" tab (the handlers in session.py and
mixing.py take one and return a new one; they never mutate it)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from biglearn.imaging import Crop


@dataclass
class Session:
    model: str = "faces"
    image: np.ndarray | None = None      # x, [S, S, C] uint8, after any patch moves
    original: np.ndarray | None = None   # x before patch moves
    upload: np.ndarray | None = None     # RGB working copy of the last upload, for re-cropping and model switches
    source: str = "none"                 # "example", "upload" or "generated"
    crop: Crop = Crop()
    fit_digit: bool = True
    mask: np.ndarray | None = None       # [grid, grid] bool, True = kept (S)
    ratio: float = 0.5
    mode: str = "random"
    seed: int = 0
    mask_order: int = 0                  # seeds the random order in which patches join S (see Studio.set_ratio)
    pending: tuple[int, int] | None = None                   # patch picked up by a move/copy click
    mask_before_moves: np.ndarray | None = None               # S before the first patch move (for undo)
    brush_open: bool = False             # the Brush tab is shown: its picture follows every change of x and S
    mix_uploads: list = field(default_factory=lambda: [None, None])   # images B and C (RGB working copies)
    mix_map: np.ndarray | None = None    # [grid, grid] int8: -1 generated, 0 = A (the input), 1 = B, 2 = C
    mix_layout: str = "left-right"
