"""The inference API used by the app, the evaluator and the trainer's sample sheets.

    completer = Completer.from_pretrained("mnist")           # a name under checkpoints/, or a folder path
    mask = completer.random_mask(0.5, seed=0)                 # or raster_mask(r), mask_from_grid(grid)
    out = completer.complete(images, mask, seed=1)            # [B, C, H, W] in [0, 1]; S patches exact

An empty mask gives joint samples p(x); a full mask has nothing to generate and returns the input.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from biglearn.checkpoint import CheckpointError, read_sampling_checkpoint, untouched_rng
from biglearn.config import ModelConfig
from biglearn.nn.generator import Generator
from biglearn.patches import SourceMasks, mask_from_grid, pixel_mask

REPO_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
CHECKPOINT_DIR_ENV = "BIGLEARN_CHECKPOINTS"
PRECISIONS = ("fp32", "bf16")


def resolve_device(name: str | None = "auto") -> torch.device:
    """auto (CUDA when there is one), cpu, cuda or cuda:N; ValueError for other names and for CUDA without one."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available here; use cpu (or auto)")
    return device


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A folder path, else a name under ./checkpoints, else a name under $BIGLEARN_CHECKPOINTS."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    candidates = [REPO_CHECKPOINTS / str(name_or_path)]
    if os.environ.get(CHECKPOINT_DIR_ENV):
        candidates.append(Path(os.environ[CHECKPOINT_DIR_ENV]) / str(name_or_path))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise CheckpointError(f"no checkpoint named {name_or_path!r} (looked in {', '.join(map(str, candidates))})")


class Completer(SourceMasks):
    """Wraps a generator for batched completion of images in [0, 1]."""

    def __init__(self, generator: Generator, device: torch.device | str | None = None, meta: dict | None = None,
                 precision: str = "fp32"):
        """precision: "fp32" (the reference), or "bf16" (autocast: matmuls and convolutions in bfloat16, about
        1.7x faster for batches on CPUs with AVX512-BF16 or AMX and on GPUs; pixels move by about 1/1000 on average,
        see docs/benchmarks.md)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = resolve_device(device) if device is None or isinstance(device, str) else device
        self.generator = generator.to(self.device).eval()
        self.cfg: ModelConfig = generator.cfg
        self.meta = meta or {}
        self.precision = precision

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str | None = "auto",
                        precision: str = "fp32") -> "Completer":
        cfg, weights, meta = read_sampling_checkpoint(resolve_checkpoint(name_or_path))
        with untouched_rng():
            generator = Generator(cfg)
        expected = generator.state_dict()
        if set(weights) != set(expected) or any(weights[k].shape != expected[k].shape for k in expected):
            raise CheckpointError(f"weights in {name_or_path} do not match the model in its config.json")
        generator.load_state_dict({k: v.float() for k, v in weights.items()})
        return cls(generator, resolve_device(device), meta, precision)

    # --- geometry helpers, so callers never need the patch maths
    @property
    def num_patches(self) -> int:
        return self.cfg.num_patches

    @property
    def grid(self) -> int:
        return self.cfg.grid

    def mask_from_grid(self, grid) -> torch.Tensor:
        mask = mask_from_grid(grid)
        if mask.shape[-1] != self.num_patches:
            raise ValueError(f"mask has {mask.shape[-1]} patches, this model uses {self.num_patches} "
                             f"({self.grid}x{self.grid})")
        return mask

    def noise(self, batch: int, seed: int | None = None) -> torch.Tensor:
        """[batch, z_dim] noise drawn on the CPU, so a seed gives the same samples on every device."""
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        return torch.randn(batch, self.cfg.z_dim, generator=generator)

    @torch.no_grad()
    def complete(self, images: torch.Tensor, source_mask: torch.Tensor, *, seed: int | None = None,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
        """Complete x_T for every patch outside the source mask.

        images: [B, C, S, S] float in [0, 1] (or uint8), S = the model's image size; source_mask: [L], [1, L] or [B, L]
        bool. Returns [B, C, S, S] float in [0, 1] on the CPU, equal to the input on every source patch.
        """
        cfg = self.cfg
        images = torch.as_tensor(images)
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        if images.ndim != 4 or images.shape[1:] != (cfg.channels, cfg.image_size, cfg.image_size):
            raise ValueError(f"expected images [B, {cfg.channels}, {cfg.image_size}, {cfg.image_size}], "
                             f"got {tuple(images.shape)}")
        images = images.float().cpu().clamp(0, 1)
        batch = images.shape[0]
        mask = torch.as_tensor(source_mask, dtype=torch.bool).cpu()
        if mask.ndim == 1 or (mask.ndim == 2 and mask.shape[0] == 1):  # one mask for every image ([L] or [1, L])
            mask = mask.reshape(1, -1).expand(batch, -1)
        if mask.shape != (batch, self.num_patches):
            raise ValueError(f"expected a source mask of {self.num_patches} patches per image, got {tuple(mask.shape)}")
        if noise is None:
            noise = self.noise(batch, seed)
        counts = mask.sum(dim=1)
        same_count = bool((counts == counts[0]).all())  # a CPU tensor: no device sync
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.generator(images.to(self.device) * 2 - 1, mask.to(self.device), noise.to(self.device),
                                 compact=same_count)
        out = ((out.float().cpu() + 1) / 2).clamp(0, 1)
        # Paste S back from the caller's own tensor, so source pixels are bit-exact.
        return torch.where(pixel_mask(mask, cfg.patch_size), images, out)
