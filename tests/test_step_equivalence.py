"""The fast training paths (bf16 autocast, torch.compile) compute the same step as eager fp32, on fixed inputs."""
import dataclasses

import pytest
import torch

from biglearn.config import preset
from biglearn.step import TrainStep
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
