"""Colour augmentation of D's inputs (`diffaug`): nothing hidden leaks through it, and the copies of an image that
D judges under both (S, T) pairs get one draw."""
import dataclasses

import torch

from biglearn.augment import color_augment
from biglearn.config import preset
from biglearn.patches import pixel_mask
from biglearn.sampler import sample_pairs
from biglearn.step import TrainStep
from biglearn.trainer import build_networks


def test_hidden_pixels_cannot_move_the_visible_ones():
    torch.manual_seed(0)
    masks = sample_pairs(4, 16)
    visible = pixel_mask(masks.source1 | masks.target1, 4)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    other = torch.where(visible, images, torch.rand_like(images) * 2 - 1)
    torch.manual_seed(1)
    a = color_augment(images, visible, chunk=4)
    torch.manual_seed(1)
    b = color_augment(other, visible, chunk=4)
    assert torch.allclose(a * visible, b * visible, atol=1e-6)
    assert not torch.allclose(a, images, atol=1e-2)  # it does augment


def test_copies_of_an_image_share_one_draw_and_other_images_do_not():
    images = torch.rand(3, 3, 8, 8) * 2 - 1
    batch = torch.cat([images, images])                                  # chunks [a, a]
    visible = torch.ones(6, 1, 8, 8, dtype=torch.bool)
    out = color_augment(batch, visible, chunk=3, copies=2)
    assert torch.equal(out[:3], out[3:])
    twice = color_augment(torch.cat([images, images, images, images]), visible.repeat(2, 1, 1, 1), chunk=3, copies=2)
    assert torch.equal(twice[:3], twice[3:6]) and not torch.allclose(twice[:3], twice[6:9])


def test_with_augmentation_g_gets_no_gradient_outside_its_targets():
    """Through D, G's loss may depend on its outputs in T only (Fig. 8: nothing is back-propagated elsewhere)."""
    cfg = dataclasses.replace(preset("celeba", "tiny"), diffaug=True)
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    step = TrainStep(nets, cfg, torch.device("cpu"))
    m = step.sample_masks(4)
    fake = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    logits = step._discriminate(nets.D, torch.cat([fake, fake]), torch.cat([m.source1, m.source2]),
                                torch.cat([m.target1, m.target2]), 4)
    logits.sum().backward()
    seen = pixel_mask((m.source1 | m.target1) | (m.source2 | m.target2), cfg.model.patch_size).expand_as(fake)
    assert fake.grad[~seen].abs().max() == 0
    assert fake.grad[seen].abs().max() > 0
