"""Config of the multi-modal MNIST model: a named preset, then `--set KEY=VALUE` overrides (as for the GAN)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from biglearn.config import check_values

NUM_LABELS = 10
IMAGE_SIZE = 28          # MNIST's own resolution: the tokenizer reads and writes 28 px digits


@dataclass
class DigitsModelConfig:
    # VQ-VAE tokenizer: two stride-2 convolutions take 28 px to a 7x7 grid of codes.
    codebook_size: int = 256
    code_dim: int = 32
    tok_channels: int = 64         # first conv; the second has twice as many
    # Any-order transformer over [y, x_1 .. x_49].
    dim: int = 128
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0

    @property
    def grid(self) -> int:
        return IMAGE_SIZE // 4

    @property
    def num_image_tokens(self) -> int:
        return self.grid ** 2

    @property
    def length(self) -> int:
        """L' = 1 label slot + the image tokens."""
        return 1 + self.num_image_tokens

    def validate(self) -> None:
        check_values(self, ("code_dim", "tok_channels", "dim", "depth", "heads", "mlp_ratio"), lambda v: v > 0,
                     "must be positive")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.codebook_size < 2:
            raise ValueError("codebook_size must be at least 2")


@dataclass
class DigitsTrainConfig:
    model: DigitsModelConfig = field(default_factory=DigitsModelConfig)
    preset: str = "demo"
    # Stage 1: the tokenizer.
    tok_kimg: float = 180.0        # images seen (3 MNIST epochs)
    tok_batch: int = 128
    tok_lr: float = 1e-3
    commitment: float = 0.25       # beta of the VQ-VAE commitment loss
    ema_decay: float = 0.99        # codebook EMA
    # Stage 2: the transformer, Eq. (19).
    kimg: float = 950.0            # 16 MNIST epochs: about 70 min on a 2-core CPU (2 threads)
    batch: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_kimg: float = 10.0
    cooldown_kimg: float = 0.0     # the lr falls linearly to 0 over the last this many kimg of stage 2
    grad_clip: float = 1.0
    # Share of pairs with S' = every image token, T' = {y}: p(y | x) exactly. At 0.1 the shipped model classified
    # only 67% of test digits after 121 kimg (a label term is 1 of up to 50 in a pair's loss), so it is 0.3.
    classify_prob: float = 0.3
    # Beyond Eq. (19): each label term's weight in the loss (1 = the paper). A pair has one label term beside up to
    # 49 image terms, so y gets little of the gradient; a larger weight trains p(y | x_S) harder at no cost in time.
    label_weight: float = 1.0
    # Beyond the paper: start each image code's token embedding from the tokenizer's codebook vector for it (a fixed
    # random projection to `dim`, at the usual 0.02 scale), so codes that look alike start alike; off = N(0, 0.02).
    embed_from_codebook: bool = False
    # Beyond the paper: stage 2 also trains on every training digit moved by up to this many pixels each way
    # ((2s + 1)^2 copies, tokenised once). At 3,000 kimg the `wide` model classified 99.9% of training digits and
    # 97.85% of test digits: a generalisation gap, which shifted copies are the classic remedy for on MNIST (900 kimg
    # with s = 1: 98.41%; the shipped weights' middle stage, checkpoints/digits-multimodal/README.md).
    shift_pixels: int = 0
    # Beyond the paper: the moved copies serve only the classification pairs (S' = every image token, T' = {y});
    # the generative pairs see the digits as they are. Shifts on every pair took classification 0.9785 -> 0.9841 but
    # p(x | y) at T = 1 0.907 -> 0.879 (the samples were drawn from a model of moved digits too).
    shift_classify_only: bool = False
    label_source_prob: float = 0.5 # share of the other pairs with y in S' (label-conditioned); else y is a target
    source_beta: tuple[float, float] = (0.5, 2.0)   # |S' ∩ x| / 49 ~ Beta (mass near 0: joint generation)
    raster_prob: float = 0.25      # share of pairs whose image sources are an initial raster portion
    # Both stages.
    tick_kimg: float = 10.0
    snap_ticks: int = 3
    keep_checkpoints: int = 2
    seed: int = 0
    device: str = "auto"
    data: str = ""
    out: str = "runs/digits"
    resume: str = ""
    max_minutes: float = 0.0
    limit_images: int = 0
    # A digits checkpoint (name under checkpoints/ or folder) whose tokenizer this run adopts, skipping stage 1;
    # '' trains one. The tokenizer fields of `model` must match it.
    tokenizer_from: str = ""
    # A digits checkpoint whose transformer weights stage 2 starts from (a fine-tune: fresh optimizer and counters;
    # `model` must match it); '' starts from a random initialisation.
    transformer_from: str = ""
    classifier: str = "mnist-classifier"   # judges tokenizer reconstructions at the end of stage 1 ('' skips)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def validate(self) -> None:
        """ValueError for values that would fail later, deep in a run (see TrainConfig.validate)."""
        self.model.validate()
        check_values(self, ("tok_batch", "batch", "snap_ticks", "keep_checkpoints"), lambda v: v >= 1, "must be >= 1")
        check_values(self, ("tok_kimg", "kimg", "tok_lr", "lr", "tick_kimg"), lambda v: v > 0, "must be positive")
        check_values(self, ("commitment", "label_weight", "weight_decay", "warmup_kimg", "cooldown_kimg", "grad_clip",
                            "max_minutes", "limit_images"), lambda v: v >= 0, "must not be negative")
        check_values(self, ("classify_prob", "label_source_prob", "raster_prob"), lambda v: 0 <= v <= 1,
                     "must lie in [0, 1]")
        check_values(self, ("ema_decay",), lambda v: 0 <= v < 1, "must lie in [0, 1)")
        check_values(self, ("shift_pixels",), lambda v: 0 <= v <= 3, "must lie in 0..3 (a digit spans 20 of 28 px)")
        if self.shift_classify_only and not self.shift_pixels:
            raise ValueError("shift_classify_only needs shift_pixels >= 1 (there are no moved copies to serve)")
        check_values(self, ("source_beta",), lambda v: len(v) == 2 and min(v) > 0, "must be two positive Beta "
                     "parameters")
        if not self.out:
            raise ValueError("out (the run folder) must not be empty")
        if self.transformer_from and self.tokenizer_from != self.transformer_from:
            # A transformer reads the codes of the tokenizer it was trained with; any other gives them other meanings.
            raise ValueError("transformer_from needs the tokenizer its codes come from: set tokenizer_from to the "
                             "same checkpoint")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DigitsTrainConfig":
        data = dict(data)
        model = DigitsModelConfig(**data.pop("model"))
        for key in ("source_beta",):
            if key in data:
                data[key] = tuple(data[key])
        return cls(model=model, **data)


def _demo() -> DigitsTrainConfig:
    """The shipped checkpoint: trains on a 2-core CPU in about an hour."""
    return DigitsTrainConfig()


def _wide() -> DigitsTrainConfig:
    """The shipped weights' first stage (issue 17): wider and shallower (192 x 4 is the largest transformer measured
    to sample one digit within 60 ms on this CPU), the label's terms weighted 5x, code embeddings from the codebook,
    and a linear cool-down over the last 600 kimg of a 3,000 kimg campaign (resumed across working sessions)."""
    model = DigitsModelConfig(dim=192, depth=4, heads=6)
    return DigitsTrainConfig(model=model, preset="wide", kimg=3000.0, cooldown_kimg=600.0, label_weight=5.0,
                             embed_from_codebook=True)


def _tiny() -> DigitsTrainConfig:
    """Seconds on a CPU: tests."""
    model = DigitsModelConfig(codebook_size=32, code_dim=8, tok_channels=8, dim=32, depth=1, heads=2)
    return DigitsTrainConfig(model=model, preset="tiny", tok_kimg=0.256, tok_batch=32, kimg=0.256, batch=32,
                             warmup_kimg=0.0, tick_kimg=0.128, snap_ticks=1, classifier="")


def _ci() -> DigitsTrainConfig:
    """About two minutes on 2,000 digits: enough for the tests to check classification and label conditioning."""
    model = DigitsModelConfig(codebook_size=64, code_dim=16, tok_channels=16, dim=64, depth=2, heads=2)
    return DigitsTrainConfig(model=model, preset="ci", tok_kimg=16.0, tok_batch=64, ema_decay=0.9, kimg=120.0,
                             batch=64, lr=2e-3, warmup_kimg=2.0, classify_prob=0.3, tick_kimg=10.0, snap_ticks=100,
                             limit_images=2000, classifier="")


PRESETS = {"demo": _demo, "wide": _wide, "ci": _ci, "tiny": _tiny}


def preset(name: str) -> DigitsTrainConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
