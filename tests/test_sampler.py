import dataclasses
import math

import pytest
import torch

from biglearn.config import preset
from biglearn.sampler import sample_pairs
from biglearn.step import TrainStep
from biglearn.trainer import build_networks


def beta_moments(a: float, b: float) -> tuple[float, float]:
    mean = a / (a + b)
    return mean, a * b / ((a + b) ** 2 * (a + b + 1))


def test_ratios_follow_the_beta_laws_of_table3():
    torch.manual_seed(0)
    n, length = 20000, 400  # many patches, so rounding barely moves the moments
    m = sample_pairs(n, length)
    s1 = m.source1.sum(1).float()
    rest = length - s1
    t1 = m.target1.sum(1).float()
    union = (m.source1 | m.target1).sum(1).float()
    s2 = m.source2.sum(1).float()
    for observed, (a, b) in ((s1 / length, (0.5, 3.0)), (t1 / rest, (3.0, 0.5)), (s2 / union, (0.5, 3.0))):
        mean, var = beta_moments(a, b)
        assert abs(observed.mean().item() - mean) < 0.01, (a, b, observed.mean().item(), mean)
        assert abs(observed.var().item() - var) < 0.1 * var + 1e-3, (a, b, observed.var().item(), var)


def test_pairs_are_disjoint_nested_and_never_empty():
    torch.manual_seed(1)
    m = sample_pairs(4000, 16, raster_prob=0.5)
    assert not (m.source1 & m.target1).any()
    assert not (m.source2 & m.target2).any()
    assert torch.equal(m.source1 | m.target1, m.source2 | m.target2)
    assert m.target1.any(1).all() and m.target2.any(1).all()
    # per-sample ratios: many different |S1| within one batch
    assert len(set(m.source1.sum(1).tolist())) > 5


def test_raster_sources_are_initial_portions():
    torch.manual_seed(2)
    m = sample_pairs(500, 25, raster_prob=1.0)
    for row in m.source1:
        count = int(row.sum())
        assert row[:count].all() and not row[count:].any()
    # S2 is the first members of S1 u T1 in raster order
    for s2, union in zip(m.source2, m.source1 | m.target1):
        members = union.nonzero().flatten()
        count = int(s2.sum())
        assert torch.equal(s2.nonzero().flatten(), members[:count])


def test_random_sources_cover_all_positions():
    torch.manual_seed(3)
    m = sample_pairs(3000, 16, raster_prob=0.0)
    frequency = m.source1.float().mean(0)
    assert frequency.min() > 0.5 * frequency.mean() and not math.isnan(frequency.mean().item())


def test_grouped_pairs_repeat_one_draw_per_group():
    torch.manual_seed(0)
    m = sample_pairs(12, 49, raster_prob=0.25, group=4)
    for mask in (m.source1, m.target1, m.source2, m.target2):
        groups = mask.reshape(3, 4, 49)
        assert torch.equal(groups, groups[:, :1].expand(-1, 4, -1))
    assert not torch.equal(m.target1[0], m.target1[4])  # groups draw independently
    assert torch.equal(m.source1 | m.target1, m.source2 | m.target2)
    with pytest.raises(ValueError, match="groups of 4"):
        sample_pairs(10, 49, group=4)


@pytest.mark.parametrize("setting, draws", [({}, 8), ({"group_masks": True}, 2), ({"pair_per_batch": True}, 1)])
def test_the_training_step_draws_per_image_per_group_or_per_batch(setting, draws):
    cfg = dataclasses.replace(preset("mnist", "cpu"), **setting)  # minibatch-std groups of 4
    step = TrainStep(build_networks(cfg, torch.device("cpu"), distributed=False), cfg, torch.device("cpu"))
    torch.manual_seed(0)
    m = step.sample_masks(8)
    pairs = torch.cat([m.source1, m.target1, m.source2, m.target2], dim=1)
    assert len(torch.unique(pairs, dim=0)) == draws
