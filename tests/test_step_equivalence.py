"""The fast training paths (bf16 autocast, torch.compile) compute the same step as eager fp32, on fixed inputs."""
import dataclasses

import pytest
import torch

from biglearn.config import preset
from biglearn.step import LOSS_NAMES, TrainStep
from biglearn.trainer import build_networks


def losses_after_steps(precision: str, compile_: bool, steps: int = 2) -> torch.Tensor:
    cfg = dataclasses.replace(preset("celeba", "tiny"), batch=8, precision=precision, compile=compile_)
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    step = TrainStep(nets, cfg, torch.device("cpu"))
    data = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)  # masks, flips and noise: the same draws for every variant
    return torch.stack([step(data, i, 1.0, 0.99) for i in range(steps)])


def test_bf16_autocast_matches_fp32_within_bf16_precision():
    reference = losses_after_steps("fp32", False)
    bf16 = losses_after_steps("bf16", False)
    # bf16 keeps 8 bits of mantissa: losses of order 1 agree to a few 1e-2
    assert torch.allclose(bf16, reference, rtol=5e-2, atol=5e-2), (bf16 - reference).abs().max()


def test_compiled_step_matches_eager():
    pytest.importorskip("torch._inductor")
    reference = losses_after_steps("fp32", False, steps=1)   # one step: compiling on a CPU is the slow part
    compiled = losses_after_steps("fp32", True, steps=1)
    assert torch.allclose(compiled, reference, rtol=1e-4, atol=1e-4), (compiled - reference).abs().max()


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_training_passes_have_no_graph_breaks(grad):
    """Dynamo's fullgraph mode refuses host syncs and data-dependent branches: the step must have none, or the
    GPU would wait for the CPU every iteration (the D update runs G under no_grad, the G update with grad)."""
    cfg = preset("celeba", "tiny")
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    step = TrainStep(nets, cfg, torch.device("cpu"))
    m = step.sample_masks(4)
    images, z = torch.rand(4, 3, 16, 16) * 2 - 1, torch.randn(4, cfg.model.z_dim)
    generator = torch.compile(nets.G, backend="eager", fullgraph=True)
    discriminator = torch.compile(nets.D, backend="eager", fullgraph=True)
    with torch.set_grad_enabled(grad):
        fake = generator(images, m.source1, z)
        logits = discriminator(fake, m.source1, m.target1)
    assert torch.equal(fake, nets.G(images, m.source1, z)) or grad
    assert logits.shape == (4,)


def parameters_after_two_steps(seed: int, distributed: bool) -> torch.Tensor:
    """G, D and EMA weights, flattened, after two steps on data and noise drawn from `seed`.

    One thread everywhere: the thread count changes the CPU's summation order, and Adam's first steps turn any
    rounding difference in a near-zero gradient into a whole learning-rate step.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _two_steps(seed, distributed)
    finally:
        torch.set_num_threads(threads)


def _two_steps(seed: int, distributed: bool) -> torch.Tensor:
    cfg = dataclasses.replace(preset("celeba", "tiny"), batch=8)
    torch.manual_seed(0)  # the same initial weights everywhere, as the trainer has
    nets = build_networks(cfg, torch.device("cpu"), distributed=distributed)
    step = TrainStep(nets, cfg, torch.device("cpu"))
    data = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(100 + seed)
    for i in range(2):  # R1 runs in both steps (r1_every = 1): its gradients must be synchronised too
        step(data, i, 1.0, 0.99)
    return torch.cat([p.detach().flatten() for net in (nets.G, nets.D, nets.G_ema) for p in net.parameters()])


def ddp_worker(rank: int, world: int, rendezvous: str, same_inputs: bool, results: str) -> None:
    """One rank of a gloo world; rank 0 saves every rank's parameters."""
    import os

    import torch.distributed as dist
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"file://{rendezvous}")
    flat = parameters_after_two_steps(0 if same_inputs else rank, distributed=True)
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        torch.save(torch.stack(gathered), results)
    dist.barrier()
    # Leave without tearing gloo down: in CI its teardown sometimes aborted a rank ("terminate called without an
    # active exception") after all the work was done. The results are on disk; the test checks them.
    os._exit(0)


@pytest.mark.parametrize("same_inputs", [True, False], ids=["same_inputs", "own_inputs"])
def test_ddp_steps_keep_ranks_in_sync(tmp_path, same_inputs):
    """Two gloo ranks. With their own data and noise every rank must still end with the same G, D and EMA (every
    gradient, R1's included, is averaged); with the same inputs on both ranks DDP must change nothing, so the
    result equals a plain single-process step."""
    import torch.multiprocessing as mp
    results = tmp_path / "parameters.pt"
    mp.spawn(ddp_worker, args=(2, str(tmp_path / "rendezvous"), same_inputs, str(results)), nprocs=2)
    per_rank = torch.load(results, weights_only=True)
    assert torch.equal(per_rank[0], per_rank[1])
    if same_inputs:
        assert torch.allclose(per_rank[0], parameters_after_two_steps(0, distributed=False), rtol=0, atol=1e-6)


def mapping_and_rest_change(mapping_lr_mult: float) -> tuple[float, float]:
    """Mean absolute change of the noise mapping's and of the rest of G's weights over one step."""
    cfg = dataclasses.replace(preset("mnist", "tiny"), batch=8, mapping_lr_mult=mapping_lr_mult)
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    mapping_ids = {id(p) for p in nets.G.noise.parameters()}
    before = {name: p.detach().clone() for name, p in nets.G.named_parameters()}
    data = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    TrainStep(nets, cfg, torch.device("cpu"))(data, 0, 1.0, 0.99)
    change = {True: [], False: []}
    for name, p in nets.G.named_parameters():
        change[id(p) in mapping_ids].append((p.detach() - before[name]).abs().mean())
    return torch.stack(change[True]).mean().item(), torch.stack(change[False]).mean().item()


def test_mapping_lr_multiplier_scales_only_the_noise_mapping():
    mapping_1, rest_1 = mapping_and_rest_change(1.0)
    mapping_small, rest_small = mapping_and_rest_change(0.01)
    # Adam's first step moves every weight by about lr whatever its gradient: the multiplier shows directly
    assert mapping_small < 0.02 * mapping_1
    assert abs(rest_small - rest_1) < 0.05 * rest_1


def g_and_d_change(d_lr_mult: float) -> tuple[float, float]:
    """Mean absolute change of G's and of D's weights over one step."""
    cfg = dataclasses.replace(preset("mnist", "tiny"), batch=8, d_lr_mult=d_lr_mult)
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    before = {net: [p.detach().clone() for p in net.parameters()] for net in (nets.G, nets.D)}
    data = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    TrainStep(nets, cfg, torch.device("cpu"))(data, 0, 1.0, 0.99)
    change = [torch.stack([(p.detach() - old).abs().mean() for p, old in zip(net.parameters(), before[net])]).mean()
              for net in (nets.G, nets.D)]
    return change[0].item(), change[1].item()


def test_d_lr_multiplier_scales_only_d():
    g_1, d_1 = g_and_d_change(1.0)
    g_fast, d_fast = g_and_d_change(4.0)
    # D steps first; on Adam's first step every weight moves by about lr, so D's change is 4x. G then meets a D
    # that differs, but its own step size is the same.
    assert 3.5 * d_1 < d_fast < 4.5 * d_1
    assert abs(g_fast - g_1) < 0.1 * g_1


def test_learning_rate_multipliers_survive_a_resume(tmp_path):
    """A run resumed with other multipliers steps with the new ones (restore sets them after loading the state)."""
    from biglearn.progress import Progress
    from biglearn.trainer import restore, save

    cfg = dataclasses.replace(preset("mnist", "tiny"), batch=8)
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    path = save(nets, cfg, Progress(3, 24), tmp_path, torch.device("cpu"))
    resumed_cfg = dataclasses.replace(cfg, d_lr_mult=2.0, mapping_lr_mult=0.5)
    resumed = build_networks(resumed_cfg, torch.device("cpu"), distributed=False)
    restore(resumed, resumed_cfg, path, torch.device("cpu"), rank=0)
    assert resumed.opt_d.param_groups[0]["lr_mult"] == 2.0
    assert [g["lr_mult"] for g in resumed.opt_g.param_groups] == [0.5, 1.0]


@pytest.mark.parametrize("overrides", [{"latent_regress": 1.0, "latent_dims": 4}, {"r1_both_pairs": True}],
                         ids=["latent-regression", "r1-both-pairs"])
def test_recipe_options_train_the_parts_they_name(overrides):
    cfg = dataclasses.replace(preset("mnist", "tiny"), batch=8,
                              **{k: v for k, v in overrides.items() if k != "latent_dims"})
    cfg.model.latent_dims = overrides.get("latent_dims", 0)
    cfg.validate()
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    data = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    losses = dict(zip(LOSS_NAMES, TrainStep(nets, cfg, torch.device("cpu"))(data, 0, 1.0, 0.99).tolist()))
    assert all(torch.isfinite(torch.tensor(list(losses.values()))))
    if "latent_regress" in overrides:
        assert losses["LR"] > 0 and nets.G.latent_regressor.net[0].weight.grad is not None
    else:
        assert losses["LR"] == 0 and losses["R1"] > 0


def test_latent_regression_needs_both_of_its_settings():
    cfg = dataclasses.replace(preset("mnist", "tiny"), latent_regress=1.0)
    with pytest.raises(ValueError, match="latent_dims"):
        cfg.validate()


def test_a_generator_optimizer_saved_with_one_group_resumes_into_two():
    """Runs from before the noise mapping had its own parameter group resume with their Adam moments intact."""
    from biglearn.trainer import split_like

    cfg = dataclasses.replace(preset("mnist", "tiny"), batch=8)
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"), distributed=False)
    old = torch.optim.AdamW(nets.G.parameters(), lr=1e-3)  # the old layout: one group, module order
    sum(p.square().sum() * (i + 1) for i, p in enumerate(nets.G.parameters())).backward()
    old.step()
    nets.opt_g.load_state_dict(split_like(old.state_dict(), nets.opt_g, nets.G))
    for p in nets.G.parameters():
        assert torch.equal(nets.opt_g.state[p]["exp_avg"], old.state[p]["exp_avg"])
    assert [g["lr_mult"] for g in nets.opt_g.param_groups] == [cfg.mapping_lr_mult, 1.0]


def test_a_checkpoint_without_a_newer_model_field_counts_as_its_default():
    from biglearn.checkpoint import CheckpointError, check_model_config

    cfg = preset("mnist", "tiny").model
    saved = dataclasses.asdict(cfg)
    del saved["noise_modulation"], saved["latent_dims"]  # written before these fields existed
    check_model_config(saved, cfg, "old.pt")
    with pytest.raises(CheckpointError, match="noise_modulation"):
        check_model_config(saved, dataclasses.replace(cfg, noise_modulation=True), "old.pt")
