"""The BigLearn-GAN objective of Alg. 2: model-to-data Eq. (4) for both pairs, communication Eq. (5), R1.

Logits are named `<images>_on<pair>`: `fake1_on2` is f(x_fake1; S2, T2), where x_fake1 ~ p(x_T1 | x_S1) q(x_S1).
All losses are batch means of softplus terms, since -log sigma(a) = softplus(-a).
"""
from __future__ import annotations

from typing import Callable

import warnings

import torch
import torch.nn.functional as F

from biglearn.patches import pixel_mask


def discriminator_losses(real_on1: torch.Tensor, real_on2: torch.Tensor, fake1_on1: torch.Tensor,
                         fake1_on2: torch.Tensor, fake2_on1: torch.Tensor,
                         fake2_on2: torch.Tensor) -> dict[str, torch.Tensor]:
    """J1, J2 (Eq. 4 for each pair) and J3 (Eq. 5), each to be minimised by D."""
    j1 = F.softplus(-real_on1).mean() + F.softplus(fake1_on1).mean()
    j2 = F.softplus(-real_on2).mean() + F.softplus(fake2_on2).mean()
    # Eq. (5): D maximises log sigma[f2 - f1] on x_fake1 and log sigma[f1 - f2] on x_fake2.
    j3 = F.softplus(fake1_on1 - fake1_on2).mean() + F.softplus(fake2_on2 - fake2_on1).mean()
    return {"J1": j1, "J2": j2, "J3": j3}


def generator_losses(fake1_on1: torch.Tensor, fake1_on2: torch.Tensor, fake2_on1: torch.Tensor,
                     fake2_on2: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1, L2 (non-saturating Eq. 4) and L3 (non-saturating Eq. 5: the labels of the communication game swapped)."""
    l1 = F.softplus(-fake1_on1).mean()
    l2 = F.softplus(-fake2_on2).mean()
    l3 = F.softplus(fake1_on2 - fake1_on1).mean() + F.softplus(fake2_on1 - fake2_on2).mean()
    return {"L1": l1, "L2": l2, "L3": l3}


def r1_penalty(discriminate: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
               gamma: float) -> torch.Tensor:
    """gamma / 2 * E ||grad_x f(x)||^2 on real images (Mescheder et al. 2018; gamma = lambda_GP = 10 in Table 3).

    `discriminate` must run D without fused attention kernels or compiled graphs: they lack double backward.
    """
    real = real.detach().requires_grad_(True)
    logits = discriminate(real)
    # backward(inputs=...) rather than autograd.grad: same result, and PyTorch's FLOP counter can trace it.
    with warnings.catch_warnings():  # its reference-cycle warning: the cycle is broken two lines down
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
        logits.sum().backward(inputs=[real], create_graph=True)
    grad, real.grad = real.grad, None  # drop the leaf's reference so the graph <-> grad cycle never forms
    return 0.5 * gamma * grad.square().sum(dim=(1, 2, 3)).mean()


def mode_seeking(twin_a: torch.Tensor, twin_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor,
                 generated: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """MSGAN's term for two completions of the same x_S with noises z_a, z_b; returns (loss, ratio).

    ratio = mean |x_a - x_b| over the generated pixels / mean |z_a - z_b|; loss = 1 / (ratio + eps), which
    grows without bound as G stops using z. `generated`: [B, 1, H, W] bool, True outside S.
    """
    generated = generated.expand_as(twin_a)
    pixel_gap = ((twin_a - twin_b).abs() * generated).sum() / generated.sum().clamp(min=1)
    ratio = pixel_gap / (z_a - z_b).abs().mean()
    return 1.0 / (ratio + eps), ratio


def latent_regression(regressor: Callable[[torch.Tensor], torch.Tensor], fakes: torch.Tensor, z: torch.Tensor,
                      source_mask: torch.Tensor) -> torch.Tensor:
    """Mean |regressor(x_fake) - z[:, :k]| per completion, weighted by the share of its patches G generated.

    A completion from a nearly full S has little room for z, so it is asked for little; a joint sample (S empty)
    for all of it. fakes [B, C, H, W], z [B, z_dim], source_mask [B, L] bool.
    """
    recovered = regressor(fakes)
    error = (recovered - z[:, :recovered.shape[1]]).abs().mean(dim=1)
    generated_share = 1.0 - source_mask.float().mean(dim=1)
    return (error * generated_share).mean()


def _generated_l1(fakes: torch.Tensor, real: torch.Tensor, source_mask: torch.Tensor,
                  patch_size: int) -> torch.Tensor:
    """Mean |x_fake - x| over the pixels outside S, per completion: fakes [K, B, C, H, W] -> [K, B]."""
    generated = (~pixel_mask(source_mask, patch_size)).expand_as(real).float()
    return ((fakes - real).abs() * generated).sum(dim=(2, 3, 4)) / generated.sum(dim=(1, 2, 3)).clamp(min=1)


def source_reconstruction(fakes: torch.Tensor, real: torch.Tensor, source_mask: torch.Tensor,
                          patch_size: int) -> torch.Tensor:
    """Mean |x_fake - x| over the pixels G generated, per completion, weighted by its S-ratio |S| / L.

    A completion from an empty S (a joint sample) is free to be anything; one from half the patches is asked to
    be close to the image those patches came from. fakes [B, C, H, W], or [K, B, C, H, W]: K completions of each
    image on one S with different noises, of which only the closest is charged (the best-of-many objective of
    Bhattacharyya et al. 2018), so the others stay free to differ; real [B, C, H, W]; source_mask [B, L] bool.
    """
    if fakes.dim() == 4:
        fakes = fakes[None]
    error = _generated_l1(fakes, real, source_mask, patch_size)
    return (error.min(dim=0).values * source_mask.float().mean(dim=1)).mean()


def encoded_reconstruction(fakes: torch.Tensor, real: torch.Tensor, source_mask: torch.Tensor,
                           patch_size: int) -> torch.Tensor:
    """Mean |x_fake - x| over the pixels G generated, every completion charged in full (BicycleGAN's cVAE-GAN):
    their z was read from x itself, so even a joint sample can be asked to give x back. fakes and real
    [B, C, H, W]; source_mask [B, L] bool."""
    return _generated_l1(fakes[None], real, source_mask, patch_size).mean()


def kl_from_standard_normal(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, I)), summed over dimensions, averaged over the batch ([B, dims])."""
    return 0.5 * (mean.square() + log_variance.exp() - 1.0 - log_variance).sum(dim=1).mean()


def feature_matching(fake_layers: list[torch.Tensor], real_layers: list[torch.Tensor],
                     source_mask: torch.Tensor) -> torch.Tensor:
    """pix2pixHD's feature matching: mean |D_l(x_fake) - D_l(x)| over D's layers l, with x the real image the
    completion's S came from, both judged under the same (S, T); each completion weighted by its S-ratio |S| / L, as in
    source_reconstruction (a joint sample is asked for nothing). Layers [B, ...]; source_mask [B, L] bool.
    """
    error = sum((fake.float() - real.detach().float()).abs().flatten(1).mean(dim=1)
                for fake, real in zip(fake_layers, real_layers, strict=True)) / len(fake_layers)
    return (error * source_mask.float().mean(dim=1)).mean()


def mismatched_reals(real: torch.Tensor, target_mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Real images whose T patches come from the next real image of the batch: S and T each real, together not.

    real [B, C, H, W]; target_mask [B, L] bool. Image i keeps its own pixels outside T_i and takes image i + 1's
    (the last takes the first's) on T_i.
    """
    on_target = pixel_mask(target_mask, patch_size).expand_as(real)
    return torch.where(on_target, real.roll(1, dims=0), real)


def mismatch_loss(mixed_on1: torch.Tensor, mixed_on2: torch.Tensor, source_mask: torch.Tensor,
                  target_mask: torch.Tensor) -> torch.Tensor:
    """D's loss for calling mismatched reals fake under both pairs (the matching-aware discriminator of Reed et
    al. 2016, with S in the role of the text): D must judge whether T belongs with S, not only whether each looks
    real. Each image is weighted by 4 |S| / L * |T| / L: 1 for half and half, 0 when S or T is empty (an empty S
    leaves a wholly real image, which no D should call fake). Logits [B], or [B, scales]; masks [B, L] bool (pair 1).
    """
    weight = 4 * source_mask.float().mean(dim=1) * target_mask.float().mean(dim=1)
    weight = weight.reshape(-1, *[1] * (mixed_on1.dim() - 1))
    return 0.5 * (weight * (F.softplus(mixed_on1) + F.softplus(mixed_on2))).mean()


def consistency_contrast(source_embeddings: torch.Tensor, target_embeddings: torch.Tensor,
                         temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE both ways over a batch that shares one (S, T): image i's S embedding must pick its own T among the
    batch's, and its T its own S (embeddings [B, E], unit length). log B when they tell nothing, 0 at best."""
    logits = source_embeddings @ target_embeddings.T / temperature
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
