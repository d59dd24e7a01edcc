import dataclasses

import pytest
import torch

from biglearn.config import preset
from biglearn.data import load_dataset
from biglearn.inference import Completer
from biglearn.nn.conv_discriminator import ConvDiscriminator
from biglearn.nn.discriminator import Discriminator
from biglearn.nn.generator import Generator
from biglearn.nn.multiscale_discriminator import MultiScaleDiscriminator
from biglearn.nn.vit import Block, take_rows
from biglearn.patches import pixel_mask
from biglearn.sampler import sample_pairs
from biglearn.step import LOSS_NAMES, TrainStep, extra_completions
from biglearn.trainer import build_networks


def tiny(dataset="celeba"):
    return preset(dataset, "tiny")


def test_generator_keeps_source_patches_exactly_and_ignores_hidden_pixels():
    cfg = tiny().model
    torch.manual_seed(0)
    G = Generator(cfg)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    masks = sample_pairs(4, cfg.num_patches)
    z = torch.randn(4, cfg.z_dim)
    out = G(images, masks.source1, z)
    keep = pixel_mask(masks.source1, cfg.patch_size).expand_as(images)
    assert torch.equal(out[keep], images[keep])
    # what lies outside S cannot leak into the completion
    other = torch.where(keep, images, torch.rand_like(images))
    assert torch.allclose(G(other, masks.source1, z), out, atol=1e-6)


def test_generator_output_depends_on_noise_for_joint_samples():
    cfg = tiny().model
    torch.manual_seed(0)
    G = Generator(cfg)
    empty = torch.zeros(2, cfg.num_patches, dtype=torch.bool)
    images = torch.zeros(2, 3, 16, 16)
    out = G(images, empty, torch.randn(2, cfg.z_dim))
    assert (out[0] - out[1]).abs().mean() > 1e-3


@pytest.mark.parametrize("architecture", [Discriminator, ConvDiscriminator], ids=["vit", "conv"])
def test_discriminator_sees_only_source_and_target_pixels(architecture):
    cfg = tiny().model
    torch.manual_seed(0)
    D = architecture(cfg)
    masks = sample_pairs(3, cfg.num_patches)
    images = torch.rand(3, 3, 16, 16)
    visible = pixel_mask(masks.source1 | masks.target1, cfg.patch_size).expand_as(images)
    other = torch.where(visible, images, torch.rand_like(images))
    assert torch.allclose(D(images, masks.source1, masks.target1), D(other, masks.source1, masks.target1), atol=1e-5)
    # swapping the roles of S and T changes the logit: the [M_s]/[M_t] tokens (indicator maps) matter
    assert not torch.allclose(D(images, masks.source1, masks.target1), D(images, masks.target1, masks.source1))


def test_minibatch_std_compares_images_within_a_group_only():
    cfg = dataclasses.replace(tiny().model, d_mbstd_group=2)
    torch.manual_seed(0)
    D = Discriminator(cfg)
    x = torch.randn(4, cfg.num_patches + 1, cfg.d_dim)
    visible = torch.ones(4, cfg.num_patches, dtype=torch.bool)
    visible[1, 0] = False  # a token hidden in one image of a group drops out of that group's statistic
    cls = D._add_minibatch_std(x, visible)[:, 0] - x[:, 0]
    feats = x[:, 1:].reshape(2, 2, cfg.num_patches, cfg.d_dim)
    std = feats.std(dim=1, unbiased=False)
    expected = torch.stack([std[0, 1:].mean(), std[1].mean()]).repeat_interleave(2)
    assert torch.allclose(cls, expected[:, None] * D.mbstd_token[0], atol=1e-5)
    # the second group's images leave the first group's statistic alone
    changed = x.clone()
    changed[2:, 1:] = torch.randn_like(changed[2:, 1:])
    assert torch.equal(D._add_minibatch_std(changed, visible)[:2], D._add_minibatch_std(x, visible)[:2])
    with pytest.raises(ValueError, match="multiple of d_mbstd_group"):  # no silent fallback to no statistic
        D._add_minibatch_std(x[:3], visible[:3])


def test_conv_minibatch_std_compares_images_within_a_group_only():
    cfg = dataclasses.replace(tiny().model, d_arch="conv", d_mbstd_group=2)
    D = ConvDiscriminator(cfg)
    x = torch.randn(4, 5, 3, 3)
    added = D._add_minibatch_std(x)
    assert torch.equal(added[:, :5], x)
    expected = x.reshape(2, 2, 5, 3, 3).std(dim=1, unbiased=False).mean(dim=(1, 2, 3)).repeat_interleave(2)
    assert torch.allclose(added[:, 5], expected[:, None, None].expand(4, 3, 3), atol=1e-5)
    changed = x.clone()
    changed[2:] = torch.randn_like(changed[2:])
    assert torch.equal(D._add_minibatch_std(changed)[:2], added[:2])
    with pytest.raises(ValueError, match="multiple of d_mbstd_group"):
        D._add_minibatch_std(x[:3])


@pytest.mark.parametrize("d_arch", ["vit", "conv"])
def test_the_coarse_discriminator_sees_the_image_pooled_and_the_fine_one_every_pixel(d_arch):
    cfg = dataclasses.replace(tiny().model, d_arch=d_arch, d_scales=2, d_mbstd_group=2)
    torch.manual_seed(0)
    D = MultiScaleDiscriminator(cfg, ConvDiscriminator if d_arch == "conv" else Discriminator)
    assert D.coarse.cfg.grid == D.fine.cfg.grid == cfg.grid  # one token grid: the same (S, T) masks serve both
    masks = sample_pairs(4, cfg.num_patches, device=torch.device("cpu"))
    images = torch.rand(4, cfg.channels, cfg.image_size, cfg.image_size) * 2 - 1
    logits = D(images, masks.source1, masks.target1)
    assert logits.shape == (4, 2)
    assert torch.allclose(logits[:, 0], D.fine(images, masks.source1, masks.target1))
    # detail that averages out in every 2x2 block (a +-0.3 checkerboard): the fine D sees it, the coarse D cannot
    checker = (torch.arange(cfg.image_size)[:, None] + torch.arange(cfg.image_size)).remainder(2) * 0.6 - 0.3
    speckled = D(images + checker, masks.source1, masks.target1)
    assert (speckled[:, 1] - logits[:, 1]).abs().max() < 1e-5
    assert (speckled[:, 0] - logits[:, 0]).abs().max() > 1e-4


@pytest.mark.parametrize("d_arch,d_scales", [("vit", 1), ("conv", 1), ("vit", 2)])
def test_d_hands_out_its_layer_features_beside_the_same_logits(d_arch, d_scales):
    cfg = dataclasses.replace(tiny().model, d_arch=d_arch, d_scales=d_scales)
    torch.manual_seed(0)
    kind = ConvDiscriminator if d_arch == "conv" else Discriminator
    D = MultiScaleDiscriminator(cfg, kind) if d_scales == 2 else kind(cfg)
    masks = sample_pairs(4, cfg.num_patches, device=torch.device("cpu"))
    images = torch.rand(4, cfg.channels, cfg.image_size, cfg.image_size) * 2 - 1
    logits, layers = D(images, masks.source1, masks.target1, features=True)
    assert torch.equal(logits, D(images, masks.source1, masks.target1))
    depth = len(D.convs) if d_arch == "conv" else cfg.d_depth
    assert len(layers) == depth * d_scales and all(layer.shape[0] == 4 for layer in layers)


def test_a_multi_scale_d_needs_even_sizes():
    with pytest.raises(ValueError, match="must be even"):
        dataclasses.replace(tiny().model, patch_size=3, image_size=15, d_scales=2).validate()
    with pytest.raises(ValueError, match="d_scales must be 1 or 2"):
        dataclasses.replace(tiny().model, d_scales=3).validate()


@pytest.mark.parametrize("noise_modulation,d_arch,d_scales", [(False, "vit", 1), (True, "vit", 1), (False, "conv", 1),
                                                              (True, "vit", 2)],
                         ids=["paper", "noise-modulation", "conv-discriminator", "multi-scale-discriminator"])
def test_every_parameter_gets_a_gradient_from_the_losses(noise_modulation, d_arch, d_scales):
    cfg = dataclasses.replace(tiny(), batch=16)
    cfg.model.noise_modulation = noise_modulation
    cfg.model.d_arch = d_arch
    cfg.model.d_scales = d_scales
    cfg.feature_matching = 1.0 if d_scales == 2 or d_arch == "conv" else 0.0
    cfg.model.d_mbstd_group = 4 if d_arch == "conv" else 0
    cfg.source_reconstruction = 1.0 if d_arch == "conv" else 0.0
    cfg.mismatch_reals = 1.0 if noise_modulation else 0.0
    if noise_modulation:  # the cVAE-GAN: the regressor's log-variance head is trained through the encoded half
        cfg.model.latent_dims, cfg.latent_regress = 4, 1.0
        cfg.model.latent_encoder, cfg.encoded_reconstruction = True, 10.0
    if d_scales == 2:  # the consistency critic rides along D; an S-ratio near 0.5 makes both steps' pairs matchable
        cfg.model.consistency_critic, cfg.consistency, cfg.source_beta = True, 1.0, (5.0, 5.0)
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    step = TrainStep(nets, cfg, torch.device("cpu"))
    data = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8)
    # two steps: the conv head's last layer starts at zero (identity head), so its inner layers see
    # a gradient only once that layer has moved
    for i in range(2):
        losses = step(data, i, 1.0, 0.99)
    assert torch.isfinite(losses).all()
    assert (losses[LOSS_NAMES.index("RC")] > 0) == (cfg.source_reconstruction > 0)
    assert (losses[LOSS_NAMES.index("MM")] > 0) == (cfg.mismatch_reals > 0)
    assert (losses[LOSS_NAMES.index("FM")] > 0) == (cfg.feature_matching > 0)
    encoded = cfg.encoded_reconstruction > 0
    assert (losses[LOSS_NAMES.index("VR")] > 0) == (losses[LOSS_NAMES.index("KL")] > 0) == encoded
    assert (losses[LOSS_NAMES.index("CR")] > 0) == (losses[LOSS_NAMES.index("CF")] > 0) == (cfg.consistency > 0)
    for name, module in (("G", nets.G), ("D", nets.D)):
        for pname, p in module.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname} got no gradient"


def test_l1_pretraining_fits_g_to_the_hidden_pixels_and_leaves_d_alone():
    cfg = dataclasses.replace(tiny("mnist"), batch=16, pretrain_l1_kimg=1.0, latent_regress=1.0)
    cfg.model.latent_dims = 8
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    step = TrainStep(nets, cfg, torch.device("cpu"))
    d_before = {k: v.clone() for k, v in nets.D.state_dict().items()}
    g_before = {k: v.clone() for k, v in nets.G.state_dict().items()}
    data = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8)
    errors = []
    for _ in range(40):
        losses = step.pretrain_l1(data, 1.0, 0.99)
        errors.append(losses[LOSS_NAMES.index("RC")].item())
    gan_terms = [LOSS_NAMES.index(k) for k in ("J1", "J2", "J3", "R1", "L1", "L2", "L3", "MS", "MM")]
    assert (losses[gan_terms] == 0).all() and losses[LOSS_NAMES.index("LR")] > 0
    assert sum(errors[-5:]) < 0.8 * sum(errors[:5]), errors  # G learns the batch's hidden pixels
    assert all(torch.equal(v, d_before[k]) for k, v in nets.D.state_dict().items())
    assert all(p.grad is None for p in nets.D.parameters())
    regressor = {k for k in g_before if k.startswith("latent_regressor.")}
    assert regressor and all(not torch.equal(nets.G.state_dict()[k], g_before[k]) for k in regressor
                             if k.endswith("weight"))


def test_the_encoded_half_learns_to_give_back_the_real_image_from_its_code():
    """cVAE-GAN: with S empty, only z (read from the real image) can tell G which image to give back."""
    cfg = dataclasses.replace(tiny("mnist"), batch=16, pretrain_l1_kimg=1.0, latent_regress=1.0,
                              encoded_reconstruction=10.0)
    cfg.model.latent_dims, cfg.model.latent_encoder = 8, True
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    step = TrainStep(nets, cfg, torch.device("cpu"))
    data = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8)
    errors = [step.pretrain_l1(data, 1.0, 0.99)[LOSS_NAMES.index("VR")].item() for _ in range(60)]
    assert sum(errors[-5:]) < 0.8 * sum(errors[:5]), errors
    z = torch.randn(2, cfg.model.z_dim)
    real = data[:2].float() / 127.5 - 1
    empty = torch.zeros(2, cfg.model.num_patches, dtype=torch.bool)
    with torch.no_grad():
        code, _, _ = step._encoded_noise(real, z)
        assert torch.equal(code[:, 8:], z[:, 8:]) and not torch.equal(code[:, :8], z[:, :8])
        # the two images' codes give two different joint samples, the code of image 0 one closer to image 0
        fakes = nets.G(real, empty, code)
        own, other = (fakes[0] - real[0]).abs().mean(), (fakes[1] - real[0]).abs().mean()
    assert own < other


def test_a_pooled_latent_regressor_cannot_read_speckle_inside_a_patch():
    """latent_pool = patch size: the regressor sees each patch's mean, so a pattern that keeps every patch's mean
    (the speckle a G could hide z in) changes nothing it reads; the full-resolution one reads it. Same weights."""
    cfg = tiny("mnist").model
    cfg.latent_dims = 8
    plain = Generator(cfg).latent_regressor
    cfg.latent_pool = cfg.patch_size
    pooled = Generator(cfg).latent_regressor
    assert pooled.state_dict().keys() == plain.state_dict().keys()
    pooled.load_state_dict(plain.state_dict())
    torch.manual_seed(0)
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    checker = torch.ones(16, 16)
    checker[::2, 1::2] = checker[1::2, ::2] = -1  # every 4x4 patch: mean 0
    speckled = images + 0.2 * checker
    with torch.no_grad():
        assert torch.allclose(pooled(speckled), pooled(images), atol=1e-5)
        assert not torch.allclose(plain(speckled), plain(images), atol=1e-3)


@pytest.mark.parametrize("pool", [0, 3])
def test_a_latent_pool_that_does_not_divide_the_image_is_refused(pool):
    cfg = tiny("mnist").model
    cfg.latent_pool = pool
    with pytest.raises(ValueError, match="latent_pool must be a positive divisor of image_size 16"):
        cfg.validate()


def test_completer_contract():
    cfg = tiny("mnist").model
    completer = Completer(Generator(cfg), "cpu")
    images = torch.rand(3, 1, 16, 16)
    mask = completer.random_mask(0.5, seed=0)[0]
    out = completer.complete(images, mask, seed=1)
    keep = pixel_mask(mask[None].expand(3, -1), cfg.patch_size).expand_as(images)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[keep], images[keep])
    assert torch.equal(completer.complete(images, mask, seed=1), out)  # a seed reproduces the sample
    full = torch.ones(cfg.num_patches, dtype=torch.bool)
    assert torch.equal(completer.complete(images, full, seed=1), images)
    joint = completer.complete(images, torch.zeros(cfg.num_patches, dtype=torch.bool), seed=2)
    assert joint.shape == images.shape


def test_inference_shortcuts_equal_the_masked_training_path():
    """compact=True (encoder on S only, last decoder block on T only) changes the cost, not the completion."""
    cfg = tiny().model
    torch.manual_seed(0)
    G = Generator(cfg).eval()
    torch.nn.init.normal_(G.head[-1].weight, std=0.1)  # a live conv head, so its input layout is exercised too
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    z = torch.randn(3, cfg.z_dim)
    for count in (0, 3, cfg.num_patches - 1, cfg.num_patches):  # joint, sparse, one target patch, nothing to do
        mask = torch.zeros(3, cfg.num_patches, dtype=torch.bool)
        for row in range(3):  # one |S| for all rows, at different places: the shortcut applies
            mask[row, torch.randperm(cfg.num_patches)[:count]] = True
        with torch.no_grad():
            fast = G(images, mask, z, compact=True)
            masked = G(images, mask, z)
        assert torch.allclose(fast, masked, atol=1e-5), count
    with pytest.raises(ValueError, match="same number"):  # rows with different |S| cannot be compacted
        G(images, torch.arange(cfg.num_patches) < torch.tensor([[1], [2], [3]]), z, compact=True)


def test_block_on_query_rows_equals_those_rows_of_the_full_block():
    torch.manual_seed(0)
    block = Block(32, 4).eval()
    x = torch.randn(2, 9, 32)
    keys = torch.rand(2, 9) > 0.3
    keys[:, 0] = True
    queries = torch.tensor([[0, 4, 8], [7, 1, 2]])
    with torch.no_grad():
        full = block(x, keys)
        rows = block(x, keys, queries=queries)
    assert torch.allclose(rows, take_rows(full, queries), atol=1e-6)
    with pytest.raises(ValueError, match="key-padding"):
        block(x, keys[:, None, :].expand(-1, 9, -1), queries=queries)


def test_bf16_completion_stays_close_to_fp32_on_the_shipped_faces(celeba_dir):
    exact = Completer.from_pretrained("celeba", device="cpu")
    fast = Completer.from_pretrained("celeba", device="cpu", precision="bf16")
    faces = load_dataset("celeba", celeba_dir, exact.cfg.image_size, "test", limit=8).images
    mask = exact.random_mask(0.5, batch=len(faces), seed=1)
    reference, approx = exact.complete(faces, mask, seed=3), fast.complete(faces, mask, seed=3)
    keep = pixel_mask(mask, exact.cfg.patch_size).expand_as(faces)
    assert torch.equal(approx[keep], reference[keep])      # sources are pasted back exactly either way
    moved = (approx - reference)[~keep].abs()
    assert 0 < moved.mean() < 0.005 and moved.max() < 0.1  # measured: mean about 0.001, max about 0.014
    with pytest.raises(ValueError, match="precision"):
        Completer.from_pretrained("celeba", device="cpu", precision="fp16")


def test_mode_seeking_adds_a_gradient_that_pulls_g_towards_using_z():
    cfg = dataclasses.replace(tiny(), batch=8)
    data = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    grads, ratios = {}, {}
    for weight in (0.0, 1e-9, 1.0):  # 1e-9: the same passes and draws as 1.0, with the term's weight negligible
        run = dataclasses.replace(cfg, mode_seeking=weight)
        torch.manual_seed(0)
        nets = build_networks(run, torch.device("cpu"), distributed=False)
        step = TrainStep(nets, run, torch.device("cpu"))
        torch.manual_seed(2)
        ratios[weight] = dict(zip(LOSS_NAMES, step(data, 0, 1.0, 0.99)))["MS"]
        grads[weight] = nets.G.noise_in[0].weight.grad.clone()  # the noise injection: where z enters the decoder
    assert ratios[0.0] == 0 and ratios[1e-9] > 0 and ratios[1e-9] == ratios[1.0]
    assert not torch.allclose(grads[1e-9], grads[1.0])


def test_best_of_many_reconstruction_completes_extra_copies_and_charges_the_closest():
    cfg = dataclasses.replace(tiny(), batch=8, source_reconstruction=1.0, reconstruction_samples=3)
    assert extra_completions(cfg, 8) == (2, 2)                    # 2 more copies of 2 images: half a batch more
    assert extra_completions(dataclasses.replace(cfg, reconstruction_samples=1), 8) == (0, 0)
    assert extra_completions(dataclasses.replace(cfg, reconstruction_samples=1, mode_seeking=1.0), 8) == (4, 1)
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    seen = []
    nets.G_train.register_forward_hook(lambda module, args, out: seen.append(len(out)))
    step = TrainStep(nets, cfg, torch.device("cpu"))
    data = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    losses = dict(zip(LOSS_NAMES, step(data, 0, 1.0, 0.99)))
    assert seen == [2 * 8, 2 * 8 + 4]          # samples for D: both pairs; G's own step: both pairs + 4 copies
    assert torch.isfinite(losses["RC"]) and losses["RC"] >= 0


def test_noise_modulation_is_a_second_noise_path_and_keeps_the_inference_shortcut_exact():
    cfg = dataclasses.replace(tiny().model, noise_modulation=True)
    torch.manual_seed(0)
    G = Generator(cfg).eval()
    images, z = torch.rand(3, 3, 16, 16) * 2 - 1, torch.randn(3, cfg.z_dim)
    mask = torch.zeros(3, cfg.num_patches, dtype=torch.bool)
    for row in range(3):
        mask[row, torch.randperm(cfg.num_patches)[:5]] = True
    with torch.no_grad():
        out = G(images, mask, z)
        assert torch.allclose(G(images, mask, z, compact=True), out, atol=1e-5)
        for layer in G.noise_in:  # the added noise path cut: z still changes the completion through modulation
            layer.weight.zero_()
        cut = G(images, mask, z)
        other = G(images, mask, torch.randn(3, cfg.z_dim))
    assert (cut - other).abs().mean() > 1e-3


def test_modulated_block_on_query_rows_equals_those_rows_of_the_full_block():
    torch.manual_seed(0)
    block = Block(32, 4).eval()
    x, modulation = torch.randn(2, 9, 32), torch.randn(2, 9, 128) * 0.3
    queries = torch.tensor([[0, 4, 8], [7, 1, 2]])
    with torch.no_grad():
        full = block(x, modulation=modulation)
        assert not torch.allclose(full, block(x))
        rows = block(x, queries=queries, modulation=modulation)
    assert torch.allclose(rows, take_rows(full, queries), atol=1e-6)


@pytest.mark.parametrize("dataset", ["mnist", "celeba"])
def test_cpu_presets_take_a_finite_step(dataset):
    cfg = dataclasses.replace(preset(dataset, "cpu"), batch=8)
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    size, channels = cfg.model.image_size, cfg.model.channels
    data = torch.randint(0, 256, (8, channels, size, size), dtype=torch.uint8)
    assert torch.isfinite(TrainStep(nets, cfg, torch.device("cpu"))(data, 0, 1.0, 0.99)).all()
