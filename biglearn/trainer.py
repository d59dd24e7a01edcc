"""The training loop: data, networks, ticks of progress, checkpoints, resume, and torchrun/DDP scale-out."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from biglearn.checkpoint import (check_model_config, checkpoint_path, export_sampling_checkpoint, list_checkpoints,
                                 load_training_state, prune_checkpoints, read_sampling_checkpoint, refuse_used_folder,
                                 remove_stale_temp_files, save_training_state)
from biglearn.config import TrainConfig, check_batch
from biglearn.data import load_dataset
from biglearn.inference import Completer, resolve_checkpoint, resolve_device
from biglearn.metrics.snapshot import load_judge, probe_images, snapshot_metrics
from biglearn.nn.consistency_critic import DiscriminatorWithCritic
from biglearn.nn.conv_discriminator import ConvDiscriminator
from biglearn.nn.discriminator import Discriminator
from biglearn.nn.multiscale_discriminator import MultiScaleDiscriminator
from biglearn.nn.generator import Generator
from biglearn.progress import Progress, Reporter, StopRequest, TrainingDiverged, format_eta, past_time_limit
from biglearn.sheets import write_training_sheets
from biglearn.study import plot_run
from biglearn.step import LOSS_NAMES, Networks, TrainStep


def setup_distributed(cfg: TrainConfig) -> tuple[torch.device, int, int]:
    """(device, rank, world size). Under torchrun: NCCL on CUDA, gloo on CPU."""
    if "RANK" not in os.environ:
        return resolve_device(cfg.device), 0, 1
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, dist.get_rank(), dist.get_world_size()


def build_networks(cfg: TrainConfig, device: torch.device, distributed: bool) -> Networks:
    discriminator = ConvDiscriminator if cfg.model.d_arch == "conv" else Discriminator
    D = MultiScaleDiscriminator(cfg.model, discriminator) if cfg.model.d_scales == 2 else discriminator(cfg.model)
    if cfg.model.consistency_critic:
        D = DiscriminatorWithCritic(D, cfg.model)
    G, D = Generator(cfg.model).to(device), D.to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    fused = device.type == "cuda"
    opt_args = dict(lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, fused=fused)
    opt_g = torch.optim.AdamW(generator_param_groups(G, cfg.mapping_lr_mult), **opt_args)
    opt_d = torch.optim.AdamW([{"params": list(D.parameters()), "lr_mult": cfg.d_lr_mult}], **opt_args)

    def fast(module):
        return torch.compile(module, dynamic=False, mode=cfg.compile_mode) if cfg.compile else module

    G_train, D_train = G, D
    if distributed:
        ids = [device.index] if device.type == "cuda" else None
        G_train, D_train = DDP(G, device_ids=ids), DDP(D, device_ids=ids)
    G_fast, D_fast = fast(G), fast(D)
    G_train = G_fast if not distributed else fast(G_train)
    D_train = D_fast if not distributed else fast(D_train)
    return Networks(G, D, G_ema, G_fast, D_fast, G_train, D_train, opt_g, opt_d)


def generator_param_groups(G: Generator, mapping_lr_mult: float) -> list[dict]:
    """Two groups: the noise mapping (its own learning-rate multiplier, read by the step) and the rest of G."""
    mapping = list(G.noise.parameters())
    mapping_ids = {id(p) for p in mapping}
    rest = [p for p in G.parameters() if id(p) not in mapping_ids]
    return [{"params": mapping, "lr_mult": mapping_lr_mult}, {"params": rest, "lr_mult": 1.0}]


def split_like(saved: dict, opt: torch.optim.Optimizer, module: torch.nn.Module) -> dict:
    """An optimizer state saved with one parameter group for all of `module` (a G from before the noise mapping had
    a group of its own) laid out as `opt`'s groups; torch matches saved and current parameters group by group."""
    if len(saved["param_groups"]) != 1 or len(opt.param_groups) == 1:
        return saved
    saved_ids = saved["param_groups"][0]["params"]  # in the module's parameter order
    position = {id(p): i for i, p in enumerate(module.parameters())}
    settings = {k: v for k, v in saved["param_groups"][0].items() if k != "params"}
    groups = [{**settings, "lr_mult": group["lr_mult"], "params": [saved_ids[position[id(p)]] for p in group["params"]]}
              for group in opt.param_groups]
    return {"state": saved["state"], "param_groups": groups}


def check_ranks_agree(nets: Networks, device: torch.device) -> None:
    """RuntimeError when the ranks' G and D weights differ: a parameter whose gradient skipped DDP's all-reduce
    (used outside the wrapped forward, say) would let them drift apart silently. One all-gather at the end."""
    params = [p.detach() for net in (nets.G, nets.D) for p in net.parameters()]
    fingerprint = torch.stack([torch.stack([p.double().sum(), p.double().abs().sum()]) for p in params]).to(device)
    gathered = [torch.empty_like(fingerprint) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, fingerprint)
    if any(not torch.equal(other, gathered[0]) for other in gathered[1:]):
        raise RuntimeError("the processes' weights differ at the end of training: a gradient missed DDP's "
                           "all-reduce")


def find_resume(cfg: TrainConfig) -> Path | None:
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        found = list_checkpoints(Path(cfg.out))
        return found[-1] if found else None
    return Path(cfg.resume)


def restore(nets: Networks, cfg: TrainConfig, path: Path, device: torch.device, rank: int) -> Progress:
    state = load_training_state(path)
    check_model_config(json.loads(state["config"])["model"], cfg.model, str(path))
    nets.G.load_state_dict(state["G"])
    nets.D.load_state_dict(state["D"])
    nets.G_ema.load_state_dict(state["G_ema"])
    for opt, key in ((nets.opt_g, "opt_g"), (nets.opt_d, "opt_d")):
        opt.load_state_dict(split_like(state[key], opt, nets.G) if key == "opt_g" else state[key])
        for group in opt.param_groups:  # the state dict brings its own; settings given for this run win (lr: per step)
            group.update(betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    nets.opt_g.param_groups[0]["lr_mult"] = cfg.mapping_lr_mult
    nets.opt_d.param_groups[0]["lr_mult"] = cfg.d_lr_mult
    progress = Progress(int(state["step"]), int(state["images_seen"]))
    if rank == 0:
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
    else:  # other ranks: a fresh stream that depends only on (seed, rank, step)
        torch.manual_seed(cfg.seed + 1_000_003 * rank + progress.step)
    return progress


def start_from_export(nets: Networks, cfg: TrainConfig) -> str:
    """G and G_ema from the sampling checkpoint cfg.init_from (D and the optimizers stay fresh); -> what was loaded.

    The export's D settings are not compared: it holds no D, so a run may go on with another one."""
    folder = resolve_checkpoint(cfg.init_from)
    exported, weights, meta = read_sampling_checkpoint(folder)
    d_settings = {k: v for k, v in dataclasses.asdict(cfg.model).items() if k.startswith("d_")}
    check_model_config({**dataclasses.asdict(exported), **d_settings}, cfg.model, f"init_from {folder}")
    for net in (nets.G, nets.G_ema):
        net.load_state_dict({k: v.float() for k, v in weights.items()})  # exports are fp16
    # The export's kimg counts only the run that wrote it; a campaign's total is in its campaign.json.
    return f"G from {folder} (exported by a run at {meta.get('kimg', '?')} kimg), a fresh D"


def save(nets: Networks, cfg: TrainConfig, progress: Progress, run_dir: Path, device: torch.device) -> Path:
    state = {
        "G": nets.G.state_dict(), "D": nets.D.state_dict(), "G_ema": nets.G_ema.state_dict(),
        "opt_g": nets.opt_g.state_dict(), "opt_d": nets.opt_d.state_dict(),
        "step": progress.step, "images_seen": progress.images_seen,
        "rng_cpu": torch.get_rng_state(), "config": cfg.to_json(),
    }
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    path = checkpoint_path(run_dir, progress.step)
    save_training_state(path, state)
    prune_checkpoints(run_dir, cfg.keep_checkpoints)
    info = {"dataset": cfg.model.dataset, "preset": cfg.preset, "kimg": progress.images_seen / 1000,
            "step": progress.step}
    # fp16 halves the shipped file; inference upcasts to fp32 on load.
    export_sampling_checkpoint(run_dir / "export", nets.G_ema, cfg.model, info, dtype=torch.float16)
    return path


def status_line(record: dict, total_kimg: float, eta: float, eta_of: str = "") -> str:
    """eta_of: what the ETA is the end of ("" = the run)."""
    d = record["J1"] + record["J2"] + record["J3"]
    g = record["L1"] + record["L2"] + record["L3"]
    # A GAN loss is never exactly 0: such a tick was all L1 pretraining (pretrain_l1_kimg) or all D warm-up
    d_text = f"D {d:.3f} (J3 {record['J3']:.3f}) R1 {record['R1']:.3f} | "
    gan = ("L1 pretraining of G, no D | " if d == g == 0 else d_text + "D warm-up, G frozen | " if g == 0 else
           d_text + f"G {g:.3f} (L3 {record['L3']:.3f}) | ")
    return (f"kimg {record['kimg']:8.2f}/{total_kimg:g} | {record['img_per_s']:7.1f} img/s | " + gan
            + (f"MS {record['MS']:.3f} | " if record.get("MS") else "")
            + "".join(f"{name} {record[name]:.3f} | " for name in ("LR", "RC", "MM", "FM", "VR", "KL", "CR", "CF")
                      if record.get(name))
            + snapshot_text(record)
            + f"ETA{eta_of} {format_eta(eta)}")


def d_warm_up_verdict(record: dict) -> str:
    """What the last tick of a D warm-up says of the fresh D: its loss on pair 1 against chance (2 ln 2, a D that
    cannot tell). Beside a trained G a fresh D can sit at chance for a long time, and G then trains on noise."""
    chance = 2 * math.log(2)
    loss = f"D's loss on pair 1 {record['J1']:.3f} against {chance:.3f} at chance"
    if record["J1"] < 0.98 * chance:
        return f"D warm-up done: {loss}; G trains from here"
    return (f"D warm-up done, but D has not left chance ({loss}): G now trains against a D that cannot tell its "
            "images from the data; a longer d_warmup_kimg gives D time (beside the shipped mnist's G: ~30 kimg)")


def snapshot_text(record: dict) -> str:
    """The snapshot's joint-sample measures for the status line ('' on other ticks)."""
    if "joint_spread" not in record:
        return ""
    text = f"joint spread {record['joint_spread']:.3f}"
    if "joint_entropy" in record:
        text += f" entropy {record['joint_entropy']:.2f} conf {record['joint_confidence']:.2f}"
    if "completion_spread" in record:
        text += f" | r=0.5 spread {record['completion_spread']:.3f}"
    if "completion_agreement" in record:
        text += f" agree {record['completion_agreement']:.2f}"
    return text + " | "


def train(cfg: TrainConfig) -> Path:
    """Train (or resume) a run in cfg.out; returns the run directory."""
    cfg.validate()
    device, rank, world = setup_distributed(cfg)
    distributed = world > 1
    local_batch = check_batch(cfg, world)
    run_dir = Path(cfg.out)
    resume_path = find_resume(cfg)
    if resume_path is None:
        refuse_used_folder(run_dir)
    torch.manual_seed(cfg.seed + 1_000_003 * rank)

    data = load_dataset(cfg.model.dataset, cfg.data, cfg.model.image_size, "train",
                        limit=cfg.limit_images, download=cfg.download)
    images = data.images.to(device)  # uint8 on the device; batches are indexed there
    nets = build_networks(cfg, device, distributed)
    progress = restore(nets, cfg, resume_path, device, rank) if resume_path else Progress()
    initial = start_from_export(nets, cfg) if cfg.init_from and not resume_path else ""
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(run_dir)
        (run_dir / "config.json").write_text(cfg.to_json())
        start = (f"resuming from {resume_path} at kimg {progress.images_seen / 1000:.2f}" if resume_path
                 else f"starting (no checkpoint in {run_dir} to resume)" if cfg.resume else "starting")
        start += f" with {initial}" if initial else ""
        print(f"{start}: {len(images)} training images, device {device}, {world} process(es), "
              f"batch {cfg.batch}, run dir {run_dir}", flush=True)
        if progress.images_seen >= cfg.kimg * 1000:
            print(f"nothing to train: the run has seen {progress.images_seen / 1000:g} kimg of its --kimg "
                  f"{cfg.kimg:g}; pass a larger --kimg to go on", flush=True)
        if cfg.compile:  # otherwise a silent minute looks like a hang
            print("torch.compile: the first steps compile G and D (about a minute on an H100), so the first tick "
                  "is slow", flush=True)
    sheet_images = data.images[torch.randperm(len(data.images), generator=torch.Generator().manual_seed(123))[:8]]
    step_fn = TrainStep(nets, cfg, device)
    reporter = Reporter(run_dir, rank == 0, resumed_at=progress.step)
    stop = StopRequest(enabled=not distributed)
    measure = rank == 0 and cfg.snapshot_samples > 0
    judge = load_judge(cfg.model.dataset, device) if measure else None
    probe = (probe_images(cfg.model.dataset, cfg.data, cfg.model.image_size, cfg.snapshot_samples) if measure
             else None)

    total_images = int(cfg.kimg * 1000)
    tick_images = max(int(cfg.tick_kimg * 1000), 1)
    warmup_images = cfg.warmup_epochs * len(images)
    start_time = tick_start = time.time()
    tick_start_images, ticks = progress.images_seen, 0
    loss_sum, loss_steps = torch.zeros(len(LOSS_NAMES), device=device), 0
    try:
        while progress.images_seen < total_images:
            lr_scale = min(1.0, (progress.images_seen + cfg.batch) / warmup_images) if warmup_images else 1.0
            ema_images = cfg.ema_kimg * 1000
            if cfg.ema_rampup:
                ema_images = min(ema_images, progress.images_seen * cfg.ema_rampup)
            ema_beta = 0.5 ** (cfg.batch / max(ema_images, 1e-8))
            index = torch.randint(len(images), (local_batch,), device=device)
            if progress.images_seen < cfg.pretrain_l1_kimg * 1000:
                loss_sum += step_fn.pretrain_l1(images[index], lr_scale, ema_beta)
            elif progress.images_seen < (cfg.pretrain_l1_kimg + cfg.d_warmup_kimg) * 1000:
                loss_sum += step_fn.warm_up_d(images[index], progress.step, lr_scale)
            else:
                loss_sum += step_fn(images[index], progress.step, lr_scale, ema_beta)
            loss_steps += 1
            progress.step += 1
            progress.images_seen += cfg.batch
            done = progress.images_seen >= total_images
            # Ctrl-C exists in one-process runs only. Ranks read their own clocks, so under torchrun the time limit
            # is agreed on at ticks (below): a rank stopping alone left the others waiting in a collective.
            out_of_time = stop.requested or (not distributed and past_time_limit(cfg.max_minutes, start_time))
            if progress.images_seen - tick_start_images < tick_images and not done and not out_of_time:
                continue
            # ---- tick: the only host sync
            if distributed:
                shared = torch.cat([loss_sum, loss_sum.new_tensor([past_time_limit(cfg.max_minutes, start_time)])])
                dist.all_reduce(shared)  # sums: the losses of all ranks, and how many ranks are out of time
                loss_sum.copy_(shared[:-1] / world)
                out_of_time = shared[-1].item() > 0
            losses = dict(zip(LOSS_NAMES, (loss_sum / loss_steps).tolist()))
            bad = [k for k, v in losses.items() if not math.isfinite(v)]
            if bad:
                last = list_checkpoints(run_dir)
                raise TrainingDiverged(f"loss {', '.join(bad)} became non-finite before kimg "
                                       f"{progress.images_seen / 1000:.2f}; the last good checkpoint is "
                                       f"{last[-1] if last else 'none'}. Lower --set lr=..., raise r1_gamma, "
                                       f"or resume from it with another seed.")
            now = time.time()
            img_per_s = (progress.images_seen - tick_start_images) / max(now - tick_start, 1e-9)
            record = {"kimg": progress.images_seen / 1000, "step": progress.step, "img_per_s": img_per_s,
                      "sec_per_tick": now - tick_start, "lr": cfg.lr * lr_scale, **losses}
            if device.type == "cuda":
                record["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            # An L1 or D-only step runs at another speed than a GAN step: within such a phase, time its end only
            phase_end = min(int((cfg.pretrain_l1_kimg + cfg.d_warmup_kimg) * 1000), total_images)
            in_phase = progress.images_seen < phase_end
            eta_of = " of this phase" if in_phase else ""
            eta = ((phase_end if in_phase else total_images) - progress.images_seen) / max(img_per_s, 1e-9)
            if cfg.max_minutes:
                eta = min(eta, cfg.max_minutes * 60 - (now - start_time))
            ticks += 1
            snapshot = rank == 0 and (ticks % cfg.snap_ticks == 0 or done or out_of_time)
            if snapshot:
                completer = Completer(nets.G_ema, device)
                write_training_sheets(completer, sheet_images, run_dir / "samples", f"img{progress.images_seen:09d}")
                if cfg.snapshot_samples:
                    record.update(snapshot_metrics(completer, cfg.snapshot_samples, judge, probe))
            # The row before the checkpoint: a run killed in between resumes from the previous checkpoint, and the
            # reporter then drops the rows after it.
            reporter.tick(record, status_line(record, cfg.kimg, eta, eta_of))
            if rank == 0 and cfg.d_warmup_kimg and tick_start_images < phase_end <= progress.images_seen:
                print(d_warm_up_verdict(record), flush=True)
            if snapshot:
                if cfg.snapshot_samples:
                    plot_run(run_dir)
                save(nets, cfg, progress, run_dir, device)
            loss_sum.zero_()
            loss_steps, tick_start, tick_start_images = 0, now, progress.images_seen
            if out_of_time:
                if rank == 0:
                    why = "on Ctrl-C" if stop.requested else f"after --max-minutes {cfg.max_minutes:g}"
                    print(f"stopping {why}; resume with --resume auto", flush=True)
                break
        if distributed:
            # Leave together, and only after rank 0's last snapshot (the networks are then freed by the caller:
            # cli.free_distributed_networks).
            dist.barrier()
            check_ranks_agree(nets, device)
    finally:
        stop.close()
        reporter.close()
        if distributed:
            dist.destroy_process_group()
    return run_dir
