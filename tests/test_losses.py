import torch

from biglearn.losses import (discriminator_losses, encoded_reconstruction, feature_matching, generator_losses,
                             kl_from_standard_normal, latent_regression, mismatch_loss, mismatched_reals, mode_seeking,
                             r1_penalty, source_reconstruction)


def logits(*values):
    return [torch.tensor([float(v)]) for v in values]


def test_discriminator_losses_fall_as_it_separates_real_from_fake():
    weak = discriminator_losses(*logits(0, 0, 0, 0, 0, 0))
    strong = discriminator_losses(*logits(5, 5, -5, -5, -5, -5))
    assert strong["J1"] < weak["J1"] and strong["J2"] < weak["J2"]
    # at zero logits every term is log 2
    assert torch.allclose(weak["J1"], torch.tensor(2 * 0.6931), atol=1e-3)


def test_generator_losses_fall_as_fakes_look_real():
    bad = generator_losses(*logits(-3, -3, -3, -3))
    good = generator_losses(*logits(3, 3, 3, 3))
    assert good["L1"] < bad["L1"] and good["L2"] < bad["L2"]


def test_communication_terms_are_antisymmetric_in_the_two_pairs():
    torch.manual_seed(0)
    f11, f12, f21, f22 = (torch.randn(8) for _ in range(4))
    real = torch.randn(8)
    d = discriminator_losses(real, real, f11, f12, f21, f22)
    d_swapped = discriminator_losses(real, real, f22, f21, f12, f11)  # relabel pair 1 <-> pair 2
    assert torch.allclose(d["J3"], d_swapped["J3"])
    g = generator_losses(f11, f12, f21, f22)
    assert torch.allclose(g["L3"], generator_losses(f22, f21, f12, f11)["L3"])
    # D rewards f2 - f1 > 0 on x_fake1 and f1 - f2 > 0 on x_fake2; G the opposite
    agree = discriminator_losses(real, real, torch.zeros(8), torch.ones(8) * 4, torch.ones(8) * 4, torch.zeros(8))
    disagree = discriminator_losses(real, real, torch.ones(8) * 4, torch.zeros(8), torch.zeros(8), torch.ones(8) * 4)
    assert agree["J3"] < disagree["J3"]
    assert generator_losses(torch.zeros(8), torch.ones(8) * 4, torch.ones(8) * 4, torch.zeros(8))["L3"] > \
        generator_losses(torch.ones(8) * 4, torch.zeros(8), torch.zeros(8), torch.ones(8) * 4)["L3"]


def test_r1_matches_hand_computation():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.5, -1.0], [2.0, 0.0]]]])
    # f(x) = sum x^2: grad = 2x, so the penalty is gamma / 2 * mean_b 4 * ||x_b||^2
    expected = 0.5 * 10 * torch.stack([4 * (x[i] ** 2).sum() for i in range(2)]).mean()
    got = r1_penalty(lambda v: v.square().sum(dim=(1, 2, 3)), x, gamma=10.0)
    assert torch.allclose(got, expected)
    # and it is differentiable with respect to D's parameters (double backward)
    w = torch.tensor(3.0, requires_grad=True)
    penalty = r1_penalty(lambda v: (w * v).sum(dim=(1, 2, 3)), x, gamma=10.0)
    (grad_w,) = torch.autograd.grad(penalty, w)
    assert torch.allclose(grad_w, torch.tensor(0.5 * 10 * 2 * 3.0 * 4))  # d/dw (5 * 4 w^2)


def test_mode_seeking_ratio_counts_generated_pixels_only_and_punishes_ignoring_z():
    a = torch.zeros(2, 1, 4, 4)
    b = torch.zeros(2, 1, 4, 4)
    b[:, :, :, 2:] = 0.5                     # the generated half differs by 0.5
    b[:, :, :, :2] = 9.0                     # the source half: any difference there must not count
    generated = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    generated[..., 2:] = True
    z_a, z_b = torch.zeros(2, 3), torch.full((2, 3), 2.0)
    loss, ratio = mode_seeking(a, b, z_a, z_b, generated)
    assert torch.isclose(ratio, torch.tensor(0.25)) and torch.isclose(loss, torch.tensor(1 / (0.25 + 1e-5)))
    collapsed, _ = mode_seeking(a, a, z_a, z_b, generated)
    assert collapsed > 1000 * loss            # identical completions for different noises cost the most


def test_latent_regression_weighs_each_completion_by_its_generated_share():
    z = torch.tensor([[1.0, -1.0, 5.0], [2.0, 0.0, 5.0]])
    recovered = torch.zeros(2, 2)

    def regressor(images):  # stands in for the conv net: a fixed guess whatever the image
        return recovered + images.sum() * 0

    empty, full = torch.zeros(2, 4, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)
    half = torch.tensor([[True, True, False, False], [True, True, True, True]])
    fakes = torch.zeros(2, 1, 4, 4)
    # |0 - z[:, :2]| per completion: 1.0 and 1.0; only the first 2 noise dimensions are asked for
    assert torch.isclose(latent_regression(regressor, fakes, z, empty), torch.tensor(1.0))
    assert latent_regression(regressor, fakes, z, full) == 0          # nothing generated: nothing to recover
    assert torch.isclose(latent_regression(regressor, fakes, z, half), torch.tensor(0.25))  # (0.5 * 1 + 0) / 2


def test_source_reconstruction_asks_more_of_completions_from_more_of_the_image():
    real = torch.zeros(3, 1, 8, 8)
    fakes = torch.ones(3, 1, 8, 8)                       # |error| 1 on every generated pixel
    empty = torch.zeros(1, 4, dtype=torch.bool)
    half = torch.tensor([[True, True, False, False]])
    full = torch.ones(1, 4, dtype=torch.bool)
    assert source_reconstruction(fakes[:1], real[:1], empty, 4) == 0      # a joint sample is free
    assert torch.isclose(source_reconstruction(fakes[:1], real[:1], half, 4), torch.tensor(0.5))
    assert source_reconstruction(fakes[:1], real[:1], full, 4) == 0       # nothing generated
    fakes[:, :, :4, :4] = 0                               # error only where S would be: not counted
    assert torch.isclose(source_reconstruction(fakes[:1], real[:1], half, 4), torch.tensor(0.5))
    # the batch mean of the per-completion terms
    masks = torch.cat([empty, half, full])
    assert torch.isclose(source_reconstruction(torch.ones(3, 1, 8, 8), real, masks, 4), torch.tensor(0.5 / 3))


def test_best_of_many_reconstruction_charges_only_the_closest_completion_of_each_image():
    real = torch.zeros(2, 1, 8, 8)
    half = torch.tensor([[True, True, False, False]] * 2)
    far, near = torch.ones(2, 1, 8, 8), torch.full((2, 1, 8, 8), 0.25)
    # image 0's closest completion is the second, image 1's the first: each pays only that one's error
    candidates = torch.stack([torch.cat([far[:1], near[:1]]), torch.cat([near[:1], far[:1]])])
    assert torch.isclose(source_reconstruction(candidates, real, half, 4), torch.tensor(0.25 * 0.5))
    # one candidate = the plain term; the gradient reaches the closest completion only
    assert torch.equal(source_reconstruction(far[None], real, half, 4), source_reconstruction(far, real, half, 4))
    candidates.requires_grad_(True)
    source_reconstruction(candidates, real, half, 4).backward()
    assert candidates.grad[0, 0].abs().sum() == 0 and candidates.grad[1, 0].abs().sum() > 0
    assert candidates.grad[0, 1].abs().sum() > 0 and candidates.grad[1, 1].abs().sum() == 0


def test_mismatched_reals_take_t_from_the_next_image_and_keep_the_rest():
    real = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 8, 8).clone()     # image i is all i
    target = torch.tensor([[False, True, False, False], [False, False, False, False], [True, True, True, True]])
    mixed = mismatched_reals(real, target, 4)
    assert torch.equal(mixed[0, 0, :4, 4:], torch.full((4, 4), 2.0))        # T patch from image 2 (roll by one)
    assert (mixed[0, 0, :4, :4] == 0).all() and (mixed[0, 0, 4:] == 0).all()  # the rest its own
    assert torch.equal(mixed[1], real[1])                                     # no T: unchanged
    assert (mixed[2] == 1).all()                                              # all T: wholly image 1


def test_mismatch_loss_asks_d_to_call_half_and_half_chimeras_fake_and_spares_wholly_real_ones():
    half_s = torch.tensor([[True, True, False, False]])
    half_t = ~half_s
    empty, full = torch.zeros(1, 4, dtype=torch.bool), torch.ones(1, 4, dtype=torch.bool)
    zero = torch.zeros(1)
    # half S, half T: weight 1, log 2 at zero logits; falls as D calls the chimera fake under both pairs
    assert torch.isclose(mismatch_loss(zero, zero, half_s, half_t), torch.tensor(0.6931), atol=1e-4)
    assert mismatch_loss(zero - 5, zero - 5, half_s, half_t) < mismatch_loss(zero, zero, half_s, half_t)
    # S empty (T all from another image: a real image) or T empty (nothing mixed in): no loss at all
    assert mismatch_loss(zero + 9, zero + 9, empty, full) == 0
    assert mismatch_loss(zero + 9, zero + 9, full, empty) == 0


def test_feature_matching_is_the_layer_mean_distance_weighted_by_the_s_ratio():
    real = [torch.zeros(2, 3, 4), torch.zeros(2, 5)]
    fake = [torch.ones(2, 3, 4), torch.full((2, 5), 3.0)]   # layer distances 1 and 3: mean 2 per image
    half = torch.tensor([[True, False], [True, False]])
    assert torch.isclose(feature_matching(fake, real, half), torch.tensor(1.0))
    assert feature_matching(fake, real, torch.zeros(2, 2, dtype=torch.bool)) == 0   # joint samples are free
    assert feature_matching(real, real, half) == 0
    # only G's side learns: the real image's features are a fixed target
    fake = [f.clone().requires_grad_() for f in fake]
    real = [r.clone().requires_grad_() for r in real]
    feature_matching(fake, real, half).backward()
    assert all(f.grad is not None for f in fake) and all(r.grad is None for r in real)


def test_encoded_reconstruction_charges_every_completion_in_full_on_its_generated_pixels():
    real = torch.zeros(2, 1, 8, 8)
    fake = torch.zeros(2, 1, 8, 8)
    fake[:, :, :4, :4] = 9.0          # the top-left patch: in S for image 0 (never charged), generated for image 1
    fake[:, :, 4:] = 1.0              # the bottom patches: generated in both, error 1
    source = torch.tensor([[True, False, False, False], [False, False, False, False]])   # image 1: a joint sample
    # image 0: mean error 2/3 over its 3 generated patches; image 1 (S empty, charged too): (9 + 1 + 1) / 4
    expected = (2 / 3 + 11 / 4) / 2
    assert torch.isclose(encoded_reconstruction(fake, real, source, 4), torch.tensor(expected))
    assert source_reconstruction(fake, real, source, 4) < encoded_reconstruction(fake, real, source, 4)
    assert encoded_reconstruction(real, real, source, 4) == 0


def test_kl_from_standard_normal_is_zero_only_at_the_standard_normal():
    zero = torch.zeros(3, 4)
    assert kl_from_standard_normal(zero, zero) == 0
    # one dimension of mean 2: 0.5 * 4; one of variance e (log 1): 0.5 * (e - 2)
    mean, log_variance = zero.clone(), zero.clone()
    mean[:, 0], log_variance[:, 1] = 2.0, 1.0
    assert torch.isclose(kl_from_standard_normal(mean, log_variance), torch.tensor(2.0 + 0.5 * (torch.e - 2)))
