"""A VQ-VAE that turns a 28 px MNIST digit into a 7x7 grid of codebook indices and back (van den Oord et al.).

The codebook is learned by exponential moving averages of the encoder outputs assigned to each code, and a code
that no output has chosen for a while is moved onto a random encoder output: without this, most of a small
codebook dies early and reconstructions blur.

    tokenizer.encode(images)   # [B, 1, 28, 28] uint8 or [0, 1] float -> [B, 7, 7] int64 codes
    tokenizer.decode(codes)    # [B, 7, 7] -> [B, 1, 28, 28] float in [0, 1]
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from biglearn.multimodal.config import IMAGE_SIZE, DigitsModelConfig

DEAD_CODE_USAGE = 1e-2   # EMA assignment count below which a code is considered dead and restarted


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 or float digits -> float [B, 1, 28, 28] in [0, 1]; a clear error for anything else."""
    if images.ndim != 4 or images.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"the tokenizer reads digits [B, 1, {IMAGE_SIZE}, {IMAGE_SIZE}], got {tuple(images.shape)}")
    return images.float() / 255 if images.dtype == torch.uint8 else images.float().clamp(0, 1)


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation with an EMA codebook (no codebook gradient) and dead-code restarts."""

    def __init__(self, size: int, dim: int, decay: float = 0.99):
        super().__init__()
        self.decay = decay
        self.register_buffer("codebook", torch.randn(size, dim) * 0.1)
        # Zero counts make every code "dead" at the first update, so the codebook starts on encoder outputs of the
        # first batch (a data-dependent initialisation); random codes far from them collapsed to a handful in use.
        self.register_buffer("ema_count", torch.zeros(size))
        self.register_buffer("ema_sum", self.codebook.clone())

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, dim] -> nearest code index [N]."""
        distances = (z.pow(2).sum(1, keepdim=True) - 2 * z @ self.codebook.T + self.codebook.pow(2).sum(1))
        return distances.argmin(dim=1)

    @torch.no_grad()
    def update(self, z: torch.Tensor, index: torch.Tensor) -> None:
        """One EMA step of counts and sums of the outputs z [N, dim] assigned to each code, then restarts."""
        one_hot = F.one_hot(index, self.codebook.shape[0]).type_as(z)
        self.ema_count.lerp_(one_hot.sum(0), 1 - self.decay)
        self.ema_sum.lerp_(one_hot.T @ z, 1 - self.decay)
        total = self.ema_count.sum()
        # Laplace smoothing keeps rarely used codes from dividing by ~0.
        count = (self.ema_count + 1e-5) / (total + 1e-5 * len(self.ema_count)) * total
        self.codebook.copy_(self.ema_sum / count[:, None])
        dead = self.ema_count < DEAD_CODE_USAGE
        if dead.any():
            picks = z[torch.randint(len(z), (int(dead.sum()),), device=z.device)]
            self.codebook[dead] = picks
            self.ema_sum[dead] = picks
            self.ema_count[dead] = 1.0


class VQTokenizer(nn.Module):
    def __init__(self, cfg: DigitsModelConfig, ema_decay: float = 0.99):
        super().__init__()
        c = cfg.tok_channels
        self.cfg = cfg
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.ReLU(),          # 28 -> 14
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),                 # 14 -> 7
            ResBlock(2 * c), ResBlock(2 * c), nn.ReLU(),
            nn.Conv2d(2 * c, cfg.code_dim, 1),
        )
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.code_dim, ema_decay)
        self.decoder = nn.Sequential(
            nn.Conv2d(cfg.code_dim, 2 * c, 3, padding=1),
            ResBlock(2 * c), ResBlock(2 * c), nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.ReLU(),   # 7 -> 14
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),                  # 14 -> 28 (logits)
        )

    def _latents(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 1, 28, 28] -> encoder outputs [B, 7, 7, code_dim]."""
        return self.encoder(to_unit(images).to(self.quantizer.codebook.device)).permute(0, 2, 3, 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        z = self._latents(images)
        return self.quantizer.indices(z.reshape(-1, z.shape[-1])).view(z.shape[:3])

    def decode_logits(self, codes: torch.Tensor) -> torch.Tensor:
        q = self.quantizer.codebook[codes]                    # [B, 7, 7, code_dim]
        return self.decoder(q.permute(0, 3, 1, 2))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.ndim != 3 or codes.shape[1:] != (self.cfg.grid, self.cfg.grid):
            raise ValueError(f"codes must be [B, {self.cfg.grid}, {self.cfg.grid}], got {tuple(codes.shape)}")
        if codes.min() < 0 or codes.max() >= self.cfg.codebook_size:
            raise ValueError(f"codes must lie in [0, {self.cfg.codebook_size})")
        return torch.sigmoid(self.decode_logits(codes.to(self.quantizer.codebook.device)))

    def training_loss(self, images: torch.Tensor, commitment_weight: float
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruction (binary cross-entropy: MNIST ink is nearly binary) + commitment; updates the codebook."""
        target = to_unit(images).to(self.quantizer.codebook.device)
        z = self._latents(images)
        flat = z.reshape(-1, z.shape[-1])
        index = self.quantizer.indices(flat.detach())
        q = self.quantizer.codebook[index].view_as(z)
        commitment = F.mse_loss(z, q)
        q = z + (q - z).detach()                              # straight-through estimator
        logits = self.decoder(q.permute(0, 3, 1, 2))
        reconstruction = F.binary_cross_entropy_with_logits(logits, target)
        if self.training:
            self.quantizer.update(flat.detach(), index)
        stats = {"recon": reconstruction.detach(), "commit": commitment.detach(),
                 "codes_used": torch.tensor(float(torch.unique(index).numel()))}
        return reconstruction + commitment_weight * commitment, stats
