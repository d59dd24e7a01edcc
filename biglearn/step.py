"""One BigLearn-GAN iteration (Alg. 2): a D update on J1+J2+J3 (+R1, MM, CR), then a G update on L1+L2+L3 (+MS, LR,
RC, VR, KL, FM, CF).

Both pairs go through each network in one batched call (G on 2B images, D on 6B, 8B or 4B), which keeps shapes
static for torch.compile and lets DDP see exactly one forward per network per update.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import record_function

from biglearn.augment import color_augment
from biglearn.config import TrainConfig
from biglearn.losses import (consistency_contrast, discriminator_losses, encoded_reconstruction, feature_matching,
                             generator_losses, kl_from_standard_normal, latent_regression, mismatch_loss,
                             mismatched_reals, mode_seeking, r1_penalty, source_reconstruction)
from biglearn.patches import pixel_mask
from biglearn.sampler import PairMasks, sample_pairs, sample_sources

# MS: the mode-seeking ratio; LR: the latent-regression error |z_hat - z|; RC: the S-ratio-weighted L1 error on T;
# MM: D's loss on mismatched reals; FM: feature matching; VR, KL: the cVAE-GAN's L1 error of the completions whose z
# was encoded from the real image, and that encoding's KL divergence from N(0, I); CR, CF: the consistency critic's
# InfoNCE loss on real images (D's) and on G's completions (G's) (each 0 when off)
LOSS_NAMES = ("J1", "J2", "J3", "R1", "L1", "L2", "L3", "MS", "LR", "RC", "MM", "FM", "VR", "KL", "CR", "CF")
# Profiler ranges of one iteration, in order: a profile then says which part limits the step. R1's own pass
# (forward and first backward) is "R1"; its double backward runs inside "D backward + step".
PHASES = ("G samples for D", "D forward", "R1", "D backward + step", "G and D forward for G", "G backward + step",
          "EMA")


@dataclass
class Networks:
    G: nn.Module            # plain modules: the state that is saved
    D: nn.Module
    G_ema: nn.Module
    G_fast: nn.Module       # compiled (or the same module): used where no gradient sync is needed
    D_fast: nn.Module
    G_train: nn.Module      # DDP-wrapped when distributed
    D_train: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer


class TrainStep:
    def __init__(self, nets: Networks, cfg: TrainConfig, device: torch.device):
        self.nets, self.cfg, self.device = nets, cfg, device
        self.autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16"
                         else contextlib.nullcontext())
        self.cuda_graphs = cfg.compile and cfg.compile_mode == "reduce-overhead"

    def _discriminate(self, d: nn.Module, images: torch.Tensor, source: torch.Tensor, target: torch.Tensor,
                      chunk: int, critic_views: tuple[torch.Tensor, ...] | None = None):
        """images: chunks of `chunk` images, each twice in a row (judged under pair 1, then under pair 2).
        -> logits, or (logits, the consistency critic's embeddings of critic_views) when those are given."""
        if self.cfg.diffaug:
            visible = pixel_mask(source | target, self.cfg.model.patch_size)
            images = color_augment(images, visible, chunk=chunk, copies=2)
        if critic_views is None:
            return d(images, source, target).float()
        logits, embeddings = d(images, source, target, critic_views=critic_views)
        return logits.float(), embeddings

    def _update(self, net: nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), self.cfg.grad_clip, foreach=True)
        opt.step()

    def sample_masks(self, batch: int) -> PairMasks:
        c = self.cfg
        # One draw for the whole batch with pair_per_batch or the consistency critic (it contrasts a batch's images
        # under one (S, T)); else one per image, or one per minibatch-std group (group_masks).
        whole_batch = c.pair_per_batch or c.consistency > 0
        return sample_pairs(batch, c.model.num_patches, source_beta=c.source_beta, target_beta=c.target_beta,
                            comm_beta=c.comm_beta, raster_prob=c.raster_prob, device=self.device,
                            group=batch if whole_batch else c.model.d_mbstd_group if c.group_masks else 1)

    def _begin(self, real_u8: torch.Tensor, lr_scale: float) -> torch.Tensor:
        """Set both optimizers' learning rates; -> the batch as floats in [-1, 1] (flipped where xflip says)."""
        c, n = self.cfg, self.nets
        if self.cuda_graphs:  # the previous step's graph outputs may now be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        real = real_u8.to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        if c.xflip:
            flip = torch.rand(real.shape[0], 1, 1, 1, device=self.device) < 0.5
            real = torch.where(flip, real.flip(3), real)
        for opt in (n.opt_g, n.opt_d):
            for group in opt.param_groups:
                group["lr"] = c.lr * lr_scale * group.get("lr_mult", 1.0)
        return real

    def _encoded_rows(self, batch: int) -> int:
        """How many of the last pair-1 completions take z from q(z | x) (encoded_reconstruction); 0 when off."""
        return batch // 2 if self.cfg.encoded_reconstruction > 0 else 0

    def _encoded_noise(self, real: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """z with z[:, :latent_dims] drawn from q(z | x) of each real image, reparameterised so that the encoder
        learns through G; the other dimensions stay as drawn. -> (z, mean, log-variance)."""
        mean, log_variance = self.nets.G.latent_regressor.encode(real)
        code = mean + torch.randn_like(mean) * (0.5 * log_variance).exp()
        return torch.cat([code, z[:, code.shape[1]:]], dim=1), mean, log_variance

    def _encoded_terms(self, fakes: torch.Tensor, real: torch.Tensor, source: torch.Tensor, mean: torch.Tensor,
                       log_variance: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The cVAE-GAN's terms on completions whose z was encoded from `real`: (weighted sum, VR, KL)."""
        c = self.cfg
        error = encoded_reconstruction(fakes.float(), real, source, c.model.patch_size)
        divergence = kl_from_standard_normal(mean, log_variance)
        return c.encoded_reconstruction * error + c.encoded_kl * divergence, error, divergence

    def _consistency(self, embeddings: tuple[torch.Tensor, torch.Tensor] | None, m: PairMasks) -> torch.Tensor:
        """The critic's InfoNCE loss on the (S, T) embeddings of 2B images, B under pair 1 then B under pair 2, each
        pair shared by the batch (0 when off), averaged over the pairs. A pair whose S or T is empty has nothing to
        match and pays 0 (its embeddings still enter, so that DDP sees every weight used)."""
        if embeddings is None:
            return torch.zeros((), device=self.device)
        total = torch.zeros((), device=self.device)
        for source, target, s_view, t_view in zip((m.source1, m.source2), (m.target1, m.target2),
                                                  *(e.chunk(2) for e in embeddings)):
            informative = source[0].any() & target[0].any()
            total = total + consistency_contrast(s_view, t_view) * informative.float()
        return total / 2

    def pretrain_l1(self, real_u8: torch.Tensor, lr_scale: float, ema_beta: float) -> torch.Tensor:
        """One G update on the L1 error of T (pretrain_l1_kimg), plus latent regression and the cVAE-GAN terms
        where they are on: S at a uniform S-ratio, no D. Returns the losses in LOSS_NAMES order: RC (and LR, VR,
        KL) set, the GAN terms 0."""
        n = self.nets
        real = self._begin(real_u8, lr_scale)
        b = real.shape[0]
        source, _ = sample_sources(b, self.cfg.model.num_patches, source_beta=(1.0, 1.0),
                                   raster_prob=self.cfg.raster_prob, device=self.device)
        z = torch.randn(b, self.cfg.model.z_dim, device=self.device)
        drawn = b - self._encoded_rows(b)
        if drawn < b:
            z_encoded, mean, log_variance = self._encoded_noise(real[drawn:], z[drawn:])
            z = torch.cat([z[:drawn], z_encoded])
        with record_function(PHASES[4]), self.autocast:
            fake = n.G_train(real, source, z)
        losses = dict.fromkeys(LOSS_NAMES, torch.zeros((), device=self.device))
        losses["RC"] = source_reconstruction(fake.float(), real, source, self.cfg.model.patch_size)
        total = losses["RC"]
        if self.cfg.latent_regress > 0:  # z stays readable from the start (and, under DDP, every weight of G is used)
            losses["LR"] = latent_regression(n.G.latent_regressor, fake[:drawn].float(), z[:drawn], source[:drawn])
            total = total + self.cfg.latent_regress * losses["LR"]
        if drawn < b:
            encoded_total, losses["VR"], losses["KL"] = self._encoded_terms(fake[drawn:], real[drawn:],
                                                                            source[drawn:], mean, log_variance)
            total = total + encoded_total
        with record_function(PHASES[5]):
            self._update(n.G, n.opt_g, total)
        with record_function(PHASES[6]):
            update_ema(n.G_ema, n.G, ema_beta)
        return torch.stack([losses[k].detach().float() for k in LOSS_NAMES])

    def warm_up_d(self, real_u8: torch.Tensor, step: int, lr_scale: float) -> torch.Tensor:
        """One D update with G frozen (d_warmup_kimg): a fresh D beside a trained G (init_from) learns to judge it
        before G hears from it. Returns the losses in LOSS_NAMES order, G's terms 0."""
        real = self._begin(real_u8, lr_scale)
        values = dict.fromkeys(LOSS_NAMES, torch.zeros((), device=self.device))
        values.update(self._train_d(real, torch.cat([real, real]), self.sample_masks(real.shape[0]), step))
        return torch.stack([values[k].detach().float() for k in LOSS_NAMES])

    def _train_d(self, real: torch.Tensor, real2: torch.Tensor, m: PairMasks, step: int) -> dict[str, torch.Tensor]:
        """D update: J1 + J2 + J3 (+ R1 every r1_every steps, scaled by r1_every; + MM on mismatched reals; + CR, the
        consistency critic's loss on the reals). real2: the batch twice, as both pairs lay it out."""
        c, n = self.cfg, self.nets
        b = real.shape[0]
        z = torch.randn(2 * b, c.model.z_dim, device=self.device)
        with record_function(PHASES[0]), torch.no_grad(), self.autocast:
            fake1, fake2 = n.G_fast(real2, m.sources, z).chunk(2)
        d_images = [real, real, fake1, fake1, fake2, fake2]
        if c.mismatch_reals > 0:  # off (the paper's step)
            mixed = mismatched_reals(real, m.target1, c.model.patch_size)
            d_images += [mixed, mixed]
        chunks = len(d_images) // 2  # each chunk of B images judged under pair 1, then under pair 2
        critic_views = (real2, m.sources, m.targets) if c.consistency > 0 else None
        with record_function(PHASES[1]), self.autocast:
            judged = self._discriminate(n.D_train, torch.cat(d_images), m.sources.repeat(chunks, 1),
                                        m.targets.repeat(chunks, 1), b, critic_views)
        logits, embeddings = judged if critic_views is not None else (judged, None)
        logits = logits.chunk(len(d_images))
        d_losses = discriminator_losses(*logits[:6])
        d_total = d_losses["J1"] + d_losses["J2"] + d_losses["J3"]
        d_losses["CR"] = self._consistency(embeddings, m)
        d_total = d_total + d_losses["CR"]
        if c.mismatch_reals > 0:
            d_losses["MM"] = mismatch_loss(*logits[6:], m.source1, m.target1)
            d_total = d_total + c.mismatch_reals * d_losses["MM"]
        else:
            d_losses["MM"] = torch.zeros((), device=self.device)
        if c.r1_gamma > 0 and step % c.r1_every == 0:
            # Pair 1 only (the paper's step), or both pairs in one pass over the reals twice
            r1_real, r1_source, r1_target = ((real2, m.sources, m.targets) if c.r1_both_pairs
                                             else (real, m.source1, m.target1))
            with record_function(PHASES[2]), self.autocast, sdpa_kernel(SDPBackend.MATH):
                r1 = r1_penalty(lambda x: n.D(x, r1_source, r1_target).float(), r1_real, c.r1_gamma)
            d_total = d_total + r1 * c.r1_every
        else:
            r1 = torch.zeros((), device=self.device)
        with record_function(PHASES[3]):
            self._update(n.D, n.opt_d, d_total)
        return {**d_losses, "R1": r1}

    def __call__(self, real_u8: torch.Tensor, step: int, lr_scale: float, ema_beta: float) -> torch.Tensor:
        """Run one iteration on a local batch of uint8 images; returns the detached losses in LOSS_NAMES order."""
        c, n = self.cfg, self.nets
        real = self._begin(real_u8, lr_scale)
        b = real.shape[0]
        m = self.sample_masks(b)
        real2 = torch.cat([real, real])
        d_losses = self._train_d(real, real2, m, step)

        # ---- G update: L1 + L2 + L3 (+ mode seeking, latent regression, reconstructions), D frozen, fresh noise
        n.D.requires_grad_(False)
        twins, copies = extra_completions(c, b)  # the first `twins` pair-1 inputs `copies` more times, other noise
        extra = twins * copies
        z = torch.randn(2 * b + extra, c.model.z_dim, device=self.device)
        # pair-1 completions drawn..b take z from q(z | x) (cVAE-GAN; none in the paper's step); the twins come first
        drawn = b - self._encoded_rows(b)
        if drawn < b:
            z_encoded, mean, log_variance = self._encoded_noise(real[drawn:], z[drawn:b])
            z = torch.cat([z[:drawn], z_encoded, z[b:]])
        g_images, g_sources = real2, m.sources
        if extra:  # off (the paper's step), no extra copies of the batch
            g_images = torch.cat([real2, real[:twins].repeat(copies, 1, 1, 1)])
            g_sources = torch.cat([m.sources, m.source1[:twins].repeat(copies, 1)])
        with record_function(PHASES[4]), self.autocast:
            fake1, fake2, twin = n.G_train(g_images, g_sources, z).split([b, b, extra])
            logits = self._discriminate(n.D_fast, torch.cat([fake1, fake1, fake2, fake2]),
                                        m.sources.repeat(2, 1), m.targets.repeat(2, 1), b)
        g_losses = generator_losses(*logits.chunk(4))
        g_total = g_losses["L1"] + g_losses["L2"] + g_losses["L3"]
        if c.mode_seeking > 0:
            generated = ~pixel_mask(m.source1[:twins], c.model.patch_size)
            ms_loss, g_losses["MS"] = mode_seeking(fake1[:twins].float(), twin.float(), z[:twins], z[2 * b:],
                                                   generated)
            g_total = g_total + c.mode_seeking * ms_loss
        else:
            g_losses["MS"] = torch.zeros((), device=self.device)
        if c.latent_regress > 0:  # on the completions whose z was drawn from N(0, I)
            g_losses["LR"] = latent_regression(n.G.latent_regressor, torch.cat([fake1[:drawn], fake2]).float(),
                                               torch.cat([z[:drawn], z[b:2 * b]]),
                                               torch.cat([m.source1[:drawn], m.source2]))
            g_total = g_total + c.latent_regress * g_losses["LR"]
        else:
            g_losses["LR"] = torch.zeros((), device=self.device)
        if c.source_reconstruction > 0:
            if c.reconstruction_samples > 1:  # only the closest of the `twins` images' completions is charged
                fakes, reals, sources = torch.stack([fake1[:twins], *twin.chunk(copies)]), real[:twins], \
                    m.source1[:twins]
            else:
                fakes, reals, sources = torch.cat([fake1, fake2]), real2, m.sources
            g_losses["RC"] = source_reconstruction(fakes.float(), reals, sources, c.model.patch_size)
            g_total = g_total + c.source_reconstruction * g_losses["RC"]
        else:
            g_losses["RC"] = torch.zeros((), device=self.device)
        if c.feature_matching > 0:
            with record_function(PHASES[4]), self.autocast:
                _, layers = n.D_fast(torch.cat([fake1, real]), torch.cat([m.source1, m.source1]),
                                     torch.cat([m.target1, m.target1]), features=True)
            fake_layers, real_layers = zip(*(layer.chunk(2) for layer in layers))
            g_losses["FM"] = feature_matching(list(fake_layers), list(real_layers), m.source1)
            g_total = g_total + c.feature_matching * g_losses["FM"]
        else:
            g_losses["FM"] = torch.zeros((), device=self.device)
        if c.consistency > 0:  # the critic (frozen with D) on both pairs' completions; S is real there, T is G's
            g_losses["CF"] = self._consistency(n.D.critic(torch.cat([fake1, fake2]), m.sources, m.targets), m)
            g_total = g_total + c.consistency * g_losses["CF"]
        else:
            g_losses["CF"] = torch.zeros((), device=self.device)
        if drawn < b:
            encoded_total, g_losses["VR"], g_losses["KL"] = self._encoded_terms(fake1[drawn:], real[drawn:],
                                                                                m.source1[drawn:], mean, log_variance)
            g_total = g_total + encoded_total
        else:
            g_losses["VR"] = g_losses["KL"] = torch.zeros((), device=self.device)
        with record_function(PHASES[5]):
            self._update(n.G, n.opt_g, g_total)
        n.D.requires_grad_(True)

        with record_function(PHASES[6]):
            update_ema(n.G_ema, n.G, ema_beta)
        values = {**d_losses, **g_losses}
        return torch.stack([values[k].detach().float() for k in LOSS_NAMES])


def extra_completions(c: TrainConfig, batch: int) -> tuple[int, int]:
    """(images, copies): G's step completes the first `images` pair-1 inputs `copies` more times with other noise,
    for the mode-seeking term (1 copy of half the batch) or best-of-K reconstruction (K - 1 copies of
    B / (2 (K - 1)) images: at most half a batch more); (0, 0) in the paper's step."""
    if c.mode_seeking > 0:
        return batch // 2, 1
    if c.source_reconstruction > 0 and c.reconstruction_samples > 1:
        copies = c.reconstruction_samples - 1
        return max(1, batch // (2 * copies)), copies
    return 0, 0


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    ema_params = list(ema.parameters())
    torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)
