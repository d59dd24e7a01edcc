"""The universal generator p(x_T | x_S) of App. C/D: G-Encoder over x_S, G-Decoder fed with [M] tokens and noise."""
from __future__ import annotations

import torch
from torch import nn

from biglearn.config import ModelConfig
from biglearn.nn.vit import Block, init_weights, row_index, scatter_rows, sincos_positions, take_rows, token_init_
from biglearn.patches import patchify, pixel_mask, unpatchify


class NoiseMapping(nn.Module):
    """z -> patch-wise noise embeddings n_1..n_L through an 8-layer MLP (then one linear layer to L x noise_dim)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = []
        width_in = cfg.z_dim
        for _ in range(cfg.noise_layers):
            layers += [nn.Linear(width_in, cfg.noise_width), nn.LeakyReLU(0.2)]
            width_in = cfg.noise_width
        self.mlp = nn.Sequential(*layers)
        self.to_patches = nn.Linear(cfg.noise_width, cfg.num_patches * cfg.noise_dim)
        self.shape = (cfg.num_patches, cfg.noise_dim)
        self.normalize = cfg.noise_norm

    def init_for_leaky_relu(self) -> None:
        """Variance-preserving init: with xavier weights each LeakyReLU layer roughly halves the variance."""
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, a=0.2, nonlinearity="leaky_relu")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)  # pixel norm, as in StyleGAN's mapping
        noise = self.to_patches(self.mlp(z)).reshape(z.shape[0], *self.shape)
        if self.normalize:  # unit RMS per patch, so the decoder cannot receive a vanishing noise signal
            noise = noise * torch.rsqrt(noise.square().mean(dim=2, keepdim=True) + 1e-8)
        return noise


class LatentRegressor(nn.Module):
    """Reads z[:dims] back from a completed image: three strided convolutions, then a linear layer.

    Part of G and trained with it, so G is rewarded for completions from which the noise can be recovered, i.e. for
    not ignoring z (beyond the paper; BicycleGAN's cLR-GAN regresses the latent code the same way). `variational`
    adds a log-variance head, so the same net is also BicycleGAN's encoder q(z | x) (`encode`).
    """

    def __init__(self, channels: int, dims: int, width: int = 32, variational: bool = False, pool: int = 1):
        super().__init__()
        self.pool = nn.AvgPool2d(pool) if pool > 1 else nn.Identity()  # no weights: state dicts stay the same
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, dims),
        )
        self.log_variance = nn.Linear(2 * width, dims) if variational else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W] in [-1, 1] -> [B, dims]."""
        return self.net(self.pool(images))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x) of `variational`: images [B, C, H, W] in [-1, 1] -> (mean, log-variance), each [B, dims]; the
        mean is what `forward` returns."""
        if self.log_variance is None:
            raise RuntimeError("encode needs a LatentRegressor built with variational=True (model.latent_encoder)")
        features = self.net[:-1](self.pool(images))
        return self.net[-1](features), self.log_variance(features)


class Generator(nn.Module):
    """Completes every patch outside S; the patches in S are copied through untouched.

    Inputs: images [B, C, H, W] in [-1, 1] (only pixels of S are read), source_mask [B, L] bool, z [B, z_dim].
    With an empty S the output is a joint sample p(x).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        patch_dim = cfg.patch_size ** 2 * cfg.channels
        self.patch_embed = nn.Linear(patch_dim, cfg.enc_dim)
        self.register_buffer("enc_pos", sincos_positions(cfg.grid, cfg.enc_dim)[None], persistent=False)
        # An always-visible register token: with S empty every attention row still has a key to attend to.
        self.register_token = nn.Parameter(torch.zeros(1, 1, cfg.enc_dim))
        self.encoder = nn.ModuleList(Block(cfg.enc_dim, cfg.enc_heads, cfg.mlp_ratio) for _ in range(cfg.enc_depth))
        self.enc_norm = nn.LayerNorm(cfg.enc_dim)
        self.enc_to_dec = nn.Linear(cfg.enc_dim, cfg.dec_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dec_dim))                        # [M]
        self.dec_pos = nn.Parameter(sincos_positions(cfg.grid, cfg.dec_dim)[None].clone())   # new decoder positions
        self.noise = NoiseMapping(cfg)
        self.no_noise_token = nn.Parameter(torch.zeros(1, 1, cfg.noise_dim))                  # [M_n]
        # Concatenating n to a layer's input and projecting back to dec_dim is W_h h + W_n n; with W_h = I this is
        # h + W_n n, one projection per decoder layer.
        self.noise_in = nn.ModuleList(nn.Linear(cfg.noise_dim, cfg.dec_dim) for _ in range(cfg.dec_depth))
        self.decoder = nn.ModuleList(Block(cfg.dec_dim, cfg.dec_heads, cfg.mlp_ratio) for _ in range(cfg.dec_depth))
        self.dec_act = nn.LeakyReLU(0.2)  # replaces the decoder's last LayerNorm (App. D)
        self.to_pixels = nn.Linear(cfg.dec_dim, patch_dim)
        hc = cfg.head_channels
        self.head = nn.Sequential(  # the 3-layer conv head; residual, so it starts near the identity
            nn.Conv2d(cfg.channels, hc, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(hc, hc, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(hc, cfg.channels, 3, padding=1),
        )
        self.latent_regressor = (LatentRegressor(cfg.channels, cfg.latent_dims, variational=cfg.latent_encoder,
                                                 pool=cfg.latent_pool) if cfg.latent_dims else None)
        # Beyond the paper: the noise also modulates each decoder block's LayerNorms (scale and shift per patch).
        self.noise_modulation = (nn.ModuleList(nn.Linear(cfg.noise_dim, 4 * cfg.dec_dim)
                                               for _ in range(cfg.dec_depth)) if cfg.noise_modulation else None)
        init_weights(self)
        for token in (self.register_token, self.mask_token, self.no_noise_token):
            token_init_(token)
        if cfg.noise_norm:
            self.noise.init_for_leaky_relu()
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def encode(self, tokens: torch.Tensor, source_mask: torch.Tensor, compact: bool = False) -> torch.Tensor:
        """G-Encoder over the source tokens; [B, L, enc_dim] with meaningless rows outside S.

        Training runs all L positions with a key-padding mask (static shapes, any |S| per sample, no host sync).
        `compact` (inference, one |S| for the whole batch) computes only the source tokens: the same result, with
        the encoder's cost falling with |S|.
        """
        batch = tokens.shape[0]
        register = self.register_token.expand(batch, -1, -1)
        if compact:
            sources = row_index(source_mask)
            x = torch.cat([register, take_rows(tokens, sources)], dim=1)
            for block in self.encoder:
                x = block(x)
            return scatter_rows(self.enc_norm(x[:, 1:]), sources, tokens.shape[1])
        x = torch.cat([register, tokens], dim=1)
        key_mask = torch.cat([source_mask.new_ones(batch, 1), source_mask], dim=1)
        for block in self.encoder:
            x = block(x, key_mask)
        return self.enc_norm(x[:, 1:])

    def decode(self, h: torch.Tensor, noise: torch.Tensor, source_mask: torch.Tensor,
               compact: bool = False) -> torch.Tensor:
        """G-Decoder: [B, L, dec_dim] tokens -> [B, L, patch pixels], meaningful outside S.

        `compact` (one |S| for the whole batch) runs the last block and the pixel projection on the target rows
        only, the only outputs kept; every row is still a key and value there.
        """
        modulations = ([layer(noise) for layer in self.noise_modulation] if self.noise_modulation is not None
                       else [None] * len(self.decoder))
        *first, last = zip(self.decoder, self.noise_in, modulations)
        for block, inject, modulation in first:
            h = block(h + inject(noise), modulation=modulation)
        block, inject, modulation = last
        if not compact:
            return self.to_pixels(self.dec_act(block(h + inject(noise), modulation=modulation)))
        targets = row_index(~source_mask)
        pixels = self.to_pixels(self.dec_act(block(h + inject(noise), queries=targets, modulation=modulation)))
        return scatter_rows(pixels, targets, h.shape[1])

    def forward(self, images: torch.Tensor, source_mask: torch.Tensor, z: torch.Tensor,
                compact: bool = False) -> torch.Tensor:
        """`compact=True` requires the same number of source patches in every row (see `encode`, `decode`)."""
        cfg = self.cfg
        src = source_mask[..., None]                                     # [B, L, 1]
        patches = patchify(images, cfg.patch_size) * src                 # pixels outside S never enter
        encoded = self.encode(self.patch_embed(patches) + self.enc_pos, source_mask, compact)

        h = torch.where(src, self.enc_to_dec(encoded), self.mask_token) + self.dec_pos
        noise = torch.where(src, self.no_noise_token, self.noise(z))     # [B, L, noise_dim]
        raw = unpatchify(self.decode(h, noise, source_mask, compact), cfg.patch_size, cfg.channels)

        keep = pixel_mask(source_mask, cfg.patch_size)
        composite = torch.where(keep, images, raw)
        # Channels-last input: oneDNN's convolutions run about 1.4x faster on it on the CPU, with identical results.
        refined = composite + self.head(composite.contiguous(memory_format=torch.channels_last))
        return torch.where(keep, images, refined)
