"""Metrics: SWD on Laplacian-pyramid neighbourhoods, Fréchet distance and KID, diversity vs S-ratio, snapshots."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from biglearn.classifier import load_classifier
from biglearn.data import load_dataset
from biglearn.metrics.diversity import (diversity_sweep, error_to_truth, mean_pairwise_distance, spearman_rho)
from biglearn.metrics.features import frechet_distance, kernel_inception_distance
from biglearn.metrics.nearest import NearestFill, source_only
from biglearn.metrics import snapshot
from biglearn.metrics.snapshot import roughness, snapshot_metrics
from biglearn.metrics.swd import (laplacian_pyramid, pyramid_resolutions, pyramid_up, sliced_wasserstein, swd)
from biglearn.patches import pixel_mask, random_mask, raster_mask

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    """128 real test faces at 32 px, as floats in [0, 1]."""
    if not (DATA / "celeba").is_dir():
        pytest.skip(f"shared CelebA data not found at {DATA / 'celeba'}")
    return load_dataset("celeba", DATA / "celeba", 32, "test", limit=128).images.float() / 255


# ---------------------------------------------------------------- SWD
def test_pyramid_levels_and_exact_reconstruction():
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert pyramid_resolutions(64) == [64, 32, 16]
    assert pyramid_resolutions(120) == [120, 60, 30]
    assert pyramid_resolutions(16) == [16]
    levels = laplacian_pyramid(images, 3)
    assert [lv.shape[-1] for lv in levels] == [64, 32, 16]
    # Collapsing the pyramid (upsample, add the band) must give the image back: nothing is lost between levels.
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = band + pyramid_up(rebuilt, band.shape[-2:])
    torch.testing.assert_close(rebuilt, images, atol=1e-5, rtol=0)


def test_sliced_wasserstein_is_zero_for_the_same_points_and_rejects_unequal_sets():
    a = torch.randn(500, 20, generator=torch.Generator().manual_seed(1))
    assert sliced_wasserstein(a, a) == 0
    assert sliced_wasserstein(a, a + 1.0) > 0.5  # a shift of 1 in 20 dims moves every projection
    with pytest.raises(ValueError):
        sliced_wasserstein(a, a[:-1])


def test_swd_is_near_zero_for_identical_sets_and_grows_with_noise(faces):
    noise = torch.randn(faces.shape, generator=torch.Generator().manual_seed(2))
    same = swd(faces, faces.clone())["average"]
    noisy = [swd((faces + sigma * noise).clamp(0, 1), faces)["average"] for sigma in (0.01, 0.03, 0.1, 0.3)]
    assert same == pytest.approx(0, abs=1e-6)
    assert noisy == sorted(noisy), f"SWD must grow with the noise level, got {noisy}"
    assert noisy[0] > 0.1, noisy  # even faint noise is measured
    assert swd(faces, faces)["resolutions"] == [32, 16]


def test_swd_ranks_real_vs_real_below_a_per_pixel_gaussian(faces):
    first, second = faces[:64], faces[64:]
    gaussian = (second.mean(0) + second.std(0) * torch.randn(second.shape, generator=torch.Generator().manual_seed(3)))
    floor = swd(first, second)
    baseline = swd(gaussian.clamp(0, 1), second)
    assert floor["average"] < baseline["average"]
    assert len(floor["per_level"]) == 2


# ---------------------------------------------------------------- Fréchet distance and KID
def test_frechet_distance_matches_the_closed_form_for_gaussians():
    g = torch.Generator().manual_seed(4)
    mean_b, std_b = torch.tensor([1.0, -0.5, 0.0, 2.0]), torch.tensor([1.0, 2.0, 0.5, 1.5])
    a = torch.randn(50_000, 4, generator=g)
    b = mean_b + std_b * torch.randn(50_000, 4, generator=g)
    # Diagonal covariances: FD = |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2.
    expected = (mean_b.square().sum() + (1 - std_b).square().sum()).item()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.03)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(400, 16, generator=g), torch.randn(400, 16, generator=g)
    same_mean, same_std = kernel_inception_distance(a, b, subsets=20, subset_size=200)
    shifted_mean, _ = kernel_inception_distance(a, b + 0.5, subsets=20, subset_size=200)
    assert abs(same_mean) < 3 * same_std + 1e-3
    assert shifted_mean > 10 * max(abs(same_mean), same_std)
    # subsets asked for as large as the sets still differ, so the spread is not 0
    assert kernel_inception_distance(a, b, subsets=5, subset_size=400)[1] > 1e-6


# ---------------------------------------------------------------- diversity
class StubSampler:
    """The slice of the Completer interface the diversity sweep uses, on 16 px gray images with 4 px patches.

    `spread(ratio)` sets how far completions stray from the truth on T: a constant gives a known-diverse
    sampler, 0 a deterministic one (it returns the ground truth, whatever the noise).
    """

    def __init__(self, spread):
        self.cfg = SimpleNamespace(patch_size=4, channels=1, image_size=16)
        self.spread = spread
        self.num_patches = 16

    def random_mask(self, ratio, *, batch=1, seed=None):
        return random_mask(16, ratio, batch=batch, generator=torch.Generator().manual_seed(seed or 0))

    def raster_mask(self, ratio, *, batch=1):
        return raster_mask(16, ratio, batch=batch)

    def noise(self, batch, seed=None):
        return torch.rand(batch, 1, 16, 16, generator=torch.Generator().manual_seed(seed or 0))

    def complete(self, images, source_mask, *, noise):
        ratio = source_mask.float().mean(1)[:, None, None, None]
        out = (images + self.spread(ratio) * (noise - 0.5)).clamp(0, 1)
        return torch.where(pixel_mask(source_mask, 4), images, out)


def _images(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(6)) * 0.5 + 0.25


def test_diversity_orders_a_diverse_sampler_above_a_deterministic_one():
    ratios = [0.0, 0.25, 0.5, 0.75]
    diverse = diversity_sweep(StubSampler(lambda r: torch.ones_like(r)), _images(), ratios, k=8)
    fixed = diversity_sweep(StubSampler(lambda r: torch.zeros_like(r)), _images(), ratios, k=8)
    assert all(d > 0.1 for d in diverse["diversity"])
    assert fixed["diversity"] == [0.0] * len(ratios)
    assert fixed["error"] == [0.0] * len(ratios)  # the deterministic stub returns the truth
    assert all(e > 0.1 for e in diverse["error"])


def test_diversity_sweep_reports_a_falling_trend_as_rho_minus_one():
    ratios = [0.0, 0.2, 0.4, 0.6, 0.8]
    for mode in ("random", "raster"):
        result = diversity_sweep(StubSampler(lambda r: 1 - r), _images(), ratios, k=8, mode=mode)
        assert result["spearman_rho"] == pytest.approx(-1.0), result
        assert result["k"] == 8 and result["images"] == 6


def test_pairwise_distance_and_error_only_look_at_target_pixels():
    truth = torch.zeros(1, 1, 4, 4)
    target = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    target[..., :2, :] = True                                  # T = the top half
    samples = torch.zeros(1, 2, 1, 4, 4)
    samples[0, 1, :, :2, :] = 0.5                              # second sample differs by 0.5 on all of T
    samples[0, :, :, 2:, :] = torch.rand(2, 1, 2, 4)           # differences on S must be ignored
    assert mean_pairwise_distance(samples, target) == pytest.approx(0.5)
    assert error_to_truth(samples, truth, target) == pytest.approx((0.0 + 0.5) / 2)  # errors 0 and 0.5 on T


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, 5, (30,), generator=g).tolist()
    y = (torch.tensor(x) + torch.randint(0, 3, (30,), generator=g)).tolist()
    assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert spearman_rho([0.1, 0.2, 0.3], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert math.isnan(spearman_rho([1, 2, 3], [5, 5, 5]))


class ReplaySampler:
    """Joint 'samples' replayed from a fixed set of images, whatever the noise: stands in for a trained model."""

    def __init__(self, images: torch.Tensor):
        self.images = images
        self.cfg = SimpleNamespace(channels=1, image_size=images.shape[-1], z_dim=4)
        self.num_patches = 16

    def noise(self, batch, seed=None):
        return torch.randn(batch, 4, generator=torch.Generator().manual_seed(seed or 0))

    def complete(self, images, source_mask, *, noise):
        assert not source_mask.any()  # joint samples: S is empty
        return self.images[: len(images)]


def test_snapshot_metrics_tell_ten_digits_from_a_collapsed_sampler(mnist_npz):
    test = load_dataset("mnist", mnist_npz, 28, "test")
    digits = test.images[:200].float() / 255
    judge, _ = load_classifier("mnist-classifier", "cpu")
    diverse = snapshot_metrics(ReplaySampler(digits), 200, judge)
    collapsed = snapshot_metrics(ReplaySampler(digits[:1].expand(200, -1, -1, -1)), 200, judge)
    assert diverse["joint_entropy"] > 2.2 and diverse["joint_confidence"] > 0.9  # log 10 = 2.30
    assert diverse["joint_spread"] > 0.15  # 0.18 for these test digits
    assert collapsed == {"joint_spread": 0.0, "joint_entropy": 0.0, "joint_confidence": pytest.approx(
        judge.predict_proba(digits[:1])[0].max().item())}
    assert set(snapshot_metrics(ReplaySampler(digits), 8)) == {"joint_spread"}  # no judge: spread only


def test_roughness_reads_speckle_above_the_real_images_and_blur_below(mnist_npz):
    digits = load_dataset("mnist", mnist_npz, 28, "test").images[:16].float() / 255
    where = torch.zeros(16, 1, 28, 28, dtype=torch.bool)
    where[..., :, 14:] = True                                           # the right half was "generated"
    real = roughness(digits, where)
    speckled = (digits + 0.3 * torch.randn(digits.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(digits, 3, stride=1, padding=1)
    assert roughness(speckled, where) > 1.5 * real and roughness(blurred, where) < 0.8 * real
    only_left = digits.clone()
    only_left[..., :, 16:] = 0                                           # changes outside `where` (and its border)
    assert roughness(only_left, ~where) == pytest.approx(roughness(digits, ~where))


def test_snapshot_cli_measures_an_exported_checkpoint(mnist_npz, capsys):
    snapshot.main(["mnist", "--data", str(mnist_npz), "--count", "32"])
    line = json.loads(capsys.readouterr().out)
    assert line["checkpoint"] == "mnist"
    assert {"joint_spread", "joint_entropy", "joint_confidence", "completion_agreement", "completion_spread",
            "completion_roughness"} <= set(line)


def test_nearest_fill_copies_t_from_the_image_closest_on_s():
    torch.manual_seed(0)
    images = torch.rand(5, 1, 8, 8)
    pool = torch.cat([torch.rand(20, 1, 8, 8), images + 0.01, torch.rand(20, 1, 8, 8)])
    keep = torch.ones(5, 1, 8, 8, dtype=torch.bool)
    keep[:, :, 4:, 4:] = False                       # T: one corner
    filled = NearestFill(pool, chunk=2)(images, keep)
    assert torch.equal(filled[keep.expand_as(filled)], images[keep.expand_as(images)])   # S is never touched
    assert torch.allclose(filled[:, :, 4:, 4:], images[:, :, 4:, 4:] + 0.01)            # T of the near copy
    # the distance is taken on S only: a pool image equal to the first image on S but not on T is chosen
    twin = images[:1].clone()
    twin[:, :, 4:, 4:] = 0.5
    filled = NearestFill(torch.cat([pool, twin]))(images[:1], keep[:1])
    assert torch.equal(filled[:, :, 4:, 4:], twin[:, :, 4:, 4:])
    assert torch.equal(source_only(images, keep)[:, :, 4:, 4:], torch.zeros(5, 1, 4, 4))


def test_nearest_fill_of_an_empty_s_draws_pool_images_not_the_first_for_all():
    pool = torch.arange(50, dtype=torch.float32).reshape(50, 1, 1, 1).expand(50, 1, 4, 4) / 50
    empty = torch.zeros(8, 1, 4, 4, dtype=torch.bool)
    filled = NearestFill(pool)(torch.rand(8, 1, 4, 4), empty)
    drawn = filled[:, 0, 0, 0]
    assert len(torch.unique(drawn)) > 1 and all((pool[:, 0, 0, 0] == v).any() for v in drawn)
