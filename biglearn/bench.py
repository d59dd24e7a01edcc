"""Training and inference benchmark: `python -m biglearn.bench --dataset celeba --preset paper --device cuda`.

Prints img/s and ms/iteration of the configured training step (bf16 + torch.compile on CUDA by default) and of
a plain eager fp32 reference step in the same run, the speed-up, FLOPs per image (counted by PyTorch's
FlopCounterMode on one eager step, R1 included), MFU against a bf16 matmul peak measured in the same run, peak
memory, and CPU inference latency for 1 and 10 completions (fp32 and bf16). Data are random uint8 images: no
dataset needed. `--checkpoints` only runs the shipped checkpoints on --device and compares them with the CPU.
`--ddp` adds the same step under DDP in a one-process world (DDP's own overhead); `--profile PATH` writes the
operators that take the most time and each phase of the step (step.PHASES); `--set compile_mode=reduce-overhead`
adds CUDA graphs, `--set r1_every=16` lazy R1; `--variant r1_every=16,compile_mode=reduce-overhead` times such a
variant of the fast step in the same process, after it. The JSON file is rewritten after every measurement, so a
run cut short by a time limit keeps what it measured.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.profiler import ProfilerActivity
from torch.profiler import profile as profile_ops
from torch.utils.flop_counter import FlopCounterMode

from biglearn.cli import free_distributed_networks
from biglearn.config import TrainConfig, apply_overrides, check_batch, preset
from biglearn.inference import PRECISIONS, Completer, resolve_device
from biglearn.multimodal.model import DigitsModel
from biglearn.nn.generator import Generator
from biglearn.step import PHASES, TrainStep
from biglearn.trainer import build_networks

PROFILED_STEPS = 3  # steps that --profile records after the timed ones
_FLOP_COUNTS: dict[tuple[str, str, int], float] = {}  # count_flops_per_image's results: (config, device, step)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul_peak(device: torch.device, size: int = 8192, reps: int = 10) -> float:
    """bf16 matmul TFLOP/s on this device (the MFU denominator)."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * size ** 3 * reps / (time.perf_counter() - start) / 1e12


@contextlib.contextmanager
def single_process_group(device: torch.device):
    """A one-process DDP world (NCCL on CUDA, gloo on CPU): the cost of DDP itself, without a second GPU."""
    with tempfile.TemporaryDirectory() as folder:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1,
                                init_method=f"file://{folder}/rendezvous")
        try:
            yield
        finally:
            dist.destroy_process_group()
            free_distributed_networks()


def time_training(cfg: TrainConfig, device: torch.device, warmup: int, iters: int, *, distributed: bool = False,
                  profile: str | None = None) -> dict:
    """img/s of `iters` steps after `warmup` steps; `profile` also profiles PROFILED_STEPS more.

    With lazy R1 the timed steps are rounded up to a multiple of r1_every, so they hold R1 in its share.
    """
    iters = math.ceil(iters / cfg.r1_every) * cfg.r1_every
    if cfg.compile:  # each measurement compiles afresh: earlier ones must not fill Dynamo's recompile limit
        torch._dynamo.reset()
    torch.manual_seed(0)
    nets = build_networks(cfg, device, distributed=distributed)
    step = TrainStep(nets, cfg, device)
    data = torch.randint(0, 256, (cfg.batch * 4, cfg.model.channels, cfg.model.image_size, cfg.model.image_size),
                         dtype=torch.uint8, device=device)

    def run(first: int, count: int) -> torch.Tensor:
        for i in range(first, first + count):
            losses = step(data[torch.randint(len(data), (cfg.batch,), device=device)], i, 1.0, 0.999)
        _sync(device)
        return losses

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    compile_start = time.perf_counter()
    run(0, warmup)
    warmup_s = time.perf_counter() - compile_start
    start = time.perf_counter()
    losses = run(warmup, iters)
    elapsed = time.perf_counter() - start
    result = {"img_per_s": cfg.batch * iters / elapsed, "ms_per_iter": 1000 * elapsed / iters, "iters": iters,
              "warmup_s": warmup_s, "finite": bool(torch.isfinite(losses).all())}
    if device.type == "cuda":
        result["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    if profile:
        try:
            result["phases"] = write_profile(lambda: run(warmup + iters, PROFILED_STEPS), device, profile)
        except Exception as error:  # noqa: BLE001 - the timing above is worth more than the profile
            result["profile_error"] = f"{type(error).__name__}: {error}"
    return result


def write_profile(steps, device: torch.device, path: str) -> dict[str, dict[str, float]]:
    """Profile a few steps: write the time of each phase of the step (step.PHASES) and the operators that take the
    most device time (CPU time on a CPU); returns {phase: {"cpu_ms": ..., "device_ms": ...}} per step.

    On a GPU a phase's CPU time is the time to launch its kernels and its device time the kernels' run time: a
    phase whose CPU time reaches its device time is launch-bound.
    """
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile_ops(activities=activities) as prof:
        steps()
    averages = prof.key_averages()
    events = {e.key: e for e in averages}
    phases = {}
    for name in PHASES:  # profiler times are in microseconds; a phase absent from the trace (no R1) counts 0
        event = events.get(name)
        phases[name] = {"cpu_ms": event.cpu_time_total / 1000 / PROFILED_STEPS if event else 0.0}
        if cuda:
            phases[name]["device_ms"] = event.device_time_total / 1000 / PROFILED_STEPS if event else 0.0
    columns = ["cpu_ms"] + (["device_ms"] if cuda else [])
    lines = [f"Phases of the step, ms per step (mean of {PROFILED_STEPS} steps):",
             f"  {'phase':<24}" + "".join(f"{c:>12}" for c in columns)]
    lines += [f"  {name:<24}" + "".join(f"{t[c]:12.2f}" for c in columns) for name, t in phases.items()]
    lines += [f"  {'sum':<24}" + "".join(f"{sum(t[c] for t in phases.values()):12.2f}" for c in columns)]
    sort_by = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = averages.table(sort_by=sort_by, row_limit=40, max_name_column_width=60)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n\nOperators:\n" + table)
    return phases


def count_flops_per_image(cfg: TrainConfig, device: torch.device, batch: int = 8, step_index: int = 0) -> float:
    """FLOPs per image of one eager step; step 0 runs R1 whatever r1_every is. Each distinct step is counted once
    per process: every measurement asks for its FLOPs, and on a lent GPU each count costs seconds."""
    small = dataclasses.replace(cfg, batch=batch, compile=False, compile_mode="default", precision="fp32")
    key = (small.to_json(), str(device), step_index)
    if key not in _FLOP_COUNTS:
        _FLOP_COUNTS[key] = _count_flops(small, device, step_index)
    return _FLOP_COUNTS[key]


def _count_flops(small: TrainConfig, device: torch.device, step_index: int) -> float:
    batch = small.batch
    nets = build_networks(small, device, distributed=False)
    step = TrainStep(nets, small, device)
    data = torch.randint(0, 256, (batch, small.model.channels, small.model.image_size, small.model.image_size),
                         dtype=torch.uint8, device=device)
    with FlopCounterMode(display=False) as counter:
        step(data, step_index, 1.0, 0.999)
    return counter.get_total_flops() / batch


def inference_latency(cfg: TrainConfig, reps: int = 9) -> dict:
    """Median CPU latency of 1 and of 10 completions in one call (r = 0.5 random masks), fp32 and bf16."""
    torch.manual_seed(0)
    generator = Generator(cfg.model)
    size, ch = cfg.model.image_size, cfg.model.channels
    result = {}
    for precision in PRECISIONS:
        completer = Completer(generator, torch.device("cpu"), precision=precision)
        prefix = "cpu_ms" if precision == "fp32" else f"cpu_{precision}_ms"
        for n in (1, 10):
            images = torch.rand(n, ch, size, size)
            mask = completer.random_mask(0.5, batch=n, seed=0)
            completer.complete(images, mask, seed=0)
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                completer.complete(images, mask, seed=0)
                times.append(time.perf_counter() - start)
            result[f"{prefix}_{n}"] = 1000 * sorted(times)[len(times) // 2]
    return result


def checkpoint_agreement(device: torch.device) -> dict:
    """The shipped checkpoints on `device` against the CPU, so that the app's pictures do not depend on where it
    runs: completions of the two GAN models (r = 0.5, same seed) and the digits model's p(y | x)."""
    report = {}
    for name in ("celeba", "mnist"):
        models = [Completer.from_pretrained(name, device=d) for d in ("cpu", device)]
        cfg = models[0].cfg
        images = torch.rand(8, cfg.channels, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(0))
        mask = models[0].random_mask(0.5, batch=8, seed=0)
        outputs = [m.complete(images, mask, seed=1).cpu() for m in models]
        start = time.perf_counter()
        models[1].complete(images, mask, seed=1)
        _sync(device)
        report[name] = {"max_abs_diff": (outputs[0] - outputs[1]).abs().max().item(),
                        "mean_abs_diff": (outputs[0] - outputs[1]).abs().mean().item(),
                        "ms_for_8": 1000 * (time.perf_counter() - start)}
    digits = [DigitsModel.from_pretrained("digits-multimodal", device=d) for d in ("cpu", device)]
    images, _ = digits[0].generate(8, seed=0)
    probs = [model.classify(images).cpu() for model in digits]
    report["digits-multimodal"] = {"classify_max_abs_diff": (probs[0] - probs[1]).abs().max().item(),
                                   "same_labels": bool(torch.equal(probs[0].argmax(1), probs[1].argmax(1)))}
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["mnist", "celeba"], default="celeba")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", choices=["fp32", "bf16"], help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="default: on for CUDA")
    parser.add_argument("--no-reference", action="store_true", help="skip the eager fp32 reference step")
    parser.add_argument("--no-inference", action="store_true", help="skip the CPU inference latency")
    parser.add_argument("--inference-only", action="store_true", help="only the CPU inference latency")
    parser.add_argument("--checkpoints", action="store_true",
                        help="only: run the shipped checkpoints on --device and compare them with the CPU")
    parser.add_argument("--ddp", action="store_true",
                        help="also time the step wrapped in DDP in a one-process world (its overhead vs plain)")
    parser.add_argument("--profile", metavar="PATH", help="write the fast step's phases and top operators to this file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="also time the fast step with these overrides, in the same process (repeatable)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    try:  # the user's mistakes (a typo in --set or --variant included) fail here, before minutes of timing
        device = resolve_device(args.device)
        cuda = device.type == "cuda"
        cfg = apply_overrides(preset(args.dataset, args.preset), args.set)
        if args.batch is not None:
            cfg.batch = args.batch
        fast = dataclasses.replace(cfg, precision=args.precision or ("bf16" if cuda else "fp32"),
                                   compile=cuda if args.compile is None else args.compile)
        variants = [(text, apply_overrides(copy.deepcopy(fast), text.split(","))) for text in args.variant]
        for checked in (fast, *(v for _, v in variants)):
            checked.validate()
            check_batch(checked, 1)
        if args.iters < 1 or args.warmup < 0:
            raise ValueError("--iters must be at least 1 and --warmup at least 0")
    except ValueError as exc:
        parser.error(str(exc))
    report = {"dataset": args.dataset, "preset": args.preset, "batch": cfg.batch, "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if cuda else "cpu", "torch": torch.__version__,
              "precision": fast.precision, "compile": fast.compile}
    if args.checkpoints:
        report["checkpoints"] = checkpoint_agreement(device)
        print(json.dumps(report, indent=2))
        write_report(args.json, report)
        return
    if args.inference_only:
        report.update(inference_latency(cfg))
        print(json.dumps(report, indent=2))
        print(f"{args.dataset}/{args.preset} CPU completion: {report['cpu_ms_1']:.1f} ms for 1 image, "
              f"{report['cpu_ms_10']:.1f} ms for 10 (fp32); {report['cpu_bf16_ms_1']:.1f} / "
              f"{report['cpu_bf16_ms_10']:.1f} ms (bf16)")
        write_report(args.json, report)
        return
    if cuda:  # first: every measurement below reports its MFU as soon as it is taken
        report["peak_bf16_tflops"] = measure_matmul_peak(device)
    report["flops_per_image"] = count_flops_per_image(cfg, device)

    def record(name: str, result: dict, step_cfg: TrainConfig) -> None:
        if cuda:
            flops = amortized_flops_per_image(step_cfg, device)
            result["achieved_tflops"] = result["img_per_s"] * flops / 1e12
            result["mfu"] = result["achieved_tflops"] / report["peak_bf16_tflops"]
        if "eager_fp32" in report and name != "eager_fp32":
            result["speedup"] = result["img_per_s"] / report["eager_fp32"]["img_per_s"]
        report[name] = result
        print(f"{name}:", json.dumps(result), flush=True)
        write_report(args.json, report)

    if not args.no_reference:  # first, so a run cut short by a time limit still has the baseline
        if cuda:  # the reference is plain fp32: no TF32 either
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        eager = dataclasses.replace(cfg, precision="fp32", compile=False)
        record("eager_fp32", time_training(eager, device, 2, max(args.iters // 2, 3)), eager)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    record("fast", time_training(fast, device, args.warmup, args.iters, profile=args.profile), fast)
    if args.ddp:
        with single_process_group(device):
            record("ddp_1_process", time_training(fast, device, args.warmup, args.iters, distributed=True), fast)
        report["ddp_overhead"] = 1 - report["ddp_1_process"]["img_per_s"] / report["fast"]["img_per_s"]
    for text, variant in variants:
        try:
            result = time_training(variant, device, args.warmup, args.iters)
        except Exception as error:  # noqa: BLE001 - one failed variant (say, CUDA graphs) must not void the rest
            result = {"error": f"{type(error).__name__}: {error}"}
            print(f"variant {text}: failed: {result['error']}", flush=True)
            report[f"variant {text}"] = result
            write_report(args.json, report)
            continue
        result["speedup_over_fast"] = result["img_per_s"] / report["fast"]["img_per_s"]
        record(f"variant {text}", result, variant)
    if not args.no_inference:
        report.update(inference_latency(cfg))
    print(json.dumps(report, indent=2))
    print(summary_line(args, cfg, fast, report))
    write_report(args.json, report)


def amortized_flops_per_image(cfg: TrainConfig, device: torch.device) -> float:
    """FLOPs per image of a step, averaged over r1_every steps when R1 is lazy (one step in k runs it)."""
    with_r1, k = count_flops_per_image(cfg, device), cfg.r1_every
    if k <= 1 or cfg.r1_gamma <= 0:
        return with_r1
    return (with_r1 + (k - 1) * count_flops_per_image(cfg, device, step_index=1)) / k


def summary_line(args: argparse.Namespace, cfg: TrainConfig, fast: TrainConfig, report: dict) -> str:
    f, line = report["fast"], f"{args.dataset}/{args.preset} batch {cfg.batch} on {report['device_name']}: "
    line += f"{f['img_per_s']:.1f} img/s ({f['ms_per_iter']:.1f} ms/iter, {fast.precision}, compile={fast.compile})"
    if "speedup" in f:
        line += f"; eager fp32 {report['eager_fp32']['img_per_s']:.1f} img/s; speed-up {f['speedup']:.2f}x"
    if "mfu" in f:
        line += f"; {report['flops_per_image'] / 1e9:.1f} GFLOP/img, MFU {100 * f['mfu']:.1f}%"
    if "ddp_overhead" in report:
        line += f"; DDP (1 process) {report['ddp_1_process']['img_per_s']:.1f} img/s, "
        line += f"overhead {100 * report['ddp_overhead']:.1f}%"
    for text in args.variant:
        v = report[f"variant {text}"]
        line += f"; [{text}] " + (v["error"] if "error" in v else f"{v['img_per_s']:.1f} img/s")
    return line


def write_report(path: str | None, report: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
