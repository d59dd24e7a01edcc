"""The consistency critic: each view sees only its own patches, it learns which T goes with which S, and G's term
pulls a completion towards the T that belongs with its S."""
import dataclasses
import math

import pytest
import torch

from biglearn.config import preset
from biglearn.losses import consistency_contrast
from biglearn.nn.consistency_critic import ConsistencyCritic
from biglearn.patches import pixel_mask


def halves(cfg, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """S = the left half of the patch grid, T = the right half, for every image of the batch."""
    columns = torch.arange(cfg.num_patches) % cfg.grid
    source = (columns < cfg.grid // 2).expand(batch, -1)
    return source, ~source


def test_infonce_is_log_batch_when_nothing_matches_and_small_when_each_pair_does():
    batch = 8
    same = torch.nn.functional.normalize(torch.randn(batch, 64), dim=1)
    assert consistency_contrast(same, same).item() < 0.1
    constant = torch.nn.functional.normalize(torch.ones(batch, 64), dim=1)
    assert consistency_contrast(constant, constant).item() == pytest.approx(math.log(batch), abs=1e-4)


def test_each_view_sees_only_its_own_patches():
    cfg = preset("mnist", "tiny").model
    torch.manual_seed(0)
    critic = ConsistencyCritic(cfg).eval()
    images = torch.rand(4, cfg.channels, cfg.image_size, cfg.image_size) * 2 - 1
    source, target = halves(cfg, 4)
    s_view, t_view = critic(images, source, target)
    on_target = pixel_mask(target, cfg.patch_size)
    repainted_t = torch.where(on_target, torch.rand_like(images), images)
    repainted_s = torch.where(on_target, images, torch.rand_like(images))
    assert torch.allclose(critic(repainted_t, source, target)[0], s_view, atol=1e-6)
    assert not torch.allclose(critic(repainted_t, source, target)[1], t_view, atol=1e-3)
    assert torch.allclose(critic(repainted_s, source, target)[1], t_view, atol=1e-6)


def two_tone_images(cfg, batch: int, generator: torch.Generator) -> torch.Tensor:
    """Each image one random grey level with pixel noise: its two halves share that level and nothing else."""
    level = torch.rand(batch, 1, 1, 1, generator=generator) * 1.6 - 0.8
    noise = 0.1 * torch.randn(batch, cfg.channels, cfg.image_size, cfg.image_size, generator=generator)
    return (level + noise).clamp(-1, 1)


def test_the_critic_learns_which_t_goes_with_which_s_and_g_pays_for_a_t_that_does_not():
    cfg = dataclasses.replace(preset("mnist", "tiny").model, consistency_critic=True)
    torch.manual_seed(0)
    critic = ConsistencyCritic(cfg)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    batch = 16
    source, target = halves(cfg, batch)
    for _ in range(150):
        loss = consistency_contrast(*critic(two_tone_images(cfg, batch, generator), source, target))
        opt.zero_grad()
        loss.backward()
        opt.step()
    images = two_tone_images(cfg, batch, generator)
    with torch.no_grad():
        learnt = consistency_contrast(*critic(images, source, target)).item()
        # the same S with the T halves of the batch shuffled: what a completion that ignores S looks like
        on_target = pixel_mask(target, cfg.patch_size)
        shuffled = torch.where(on_target, images.roll(1, dims=0), images)
        mismatched = consistency_contrast(*critic(shuffled, source, target)).item()
    assert learnt < 0.35 * math.log(batch)      # log 16 = 2.77 when S tells nothing of T
    assert mismatched > 2 * learnt
