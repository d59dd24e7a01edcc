"""Two-stage training of the multi-modal MNIST model in one run folder, resumable at any checkpoint.

Stage 1 fits the VQ tokenizer on the training digits; stage 2 tokenizes them once and fits the any-order
transformer with Eq. (19). Checkpoints hold the stage, both networks, the current optimizer, the counters and the
RNG state (torch.load(weights_only=True)); `--resume auto` continues bit for bit on the CPU. After each stage-2
snapshot, OUT/export is a complete sampling checkpoint (what checkpoints/digits-multimodal ships).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from biglearn.checkpoint import (CheckpointError, check_model_config, checkpoint_path, list_checkpoints,
                                 load_training_state, prune_checkpoints, refuse_used_folder, remove_stale_temp_files,
                                 save_training_state)
from biglearn.cli import run_training, saved_config
from biglearn.config import apply_overrides, check_resumed_preset
from biglearn.data import load_dataset
from biglearn.inference import resolve_device
from biglearn.multimodal import figures
from biglearn.multimodal.config import IMAGE_SIZE, DigitsTrainConfig, preset
from biglearn.multimodal.model import DigitsModel
from biglearn.multimodal.objective import LABEL, sample_pairs, target_slots
from biglearn.multimodal.tokenizer import VQTokenizer
from biglearn.multimodal.transformer import AnyOrderTransformer
from biglearn.sheets import save_png
from biglearn.progress import Progress, Reporter, StopRequest, TrainingDiverged, format_eta, past_time_limit

STAGES = ("tokenizer", "transformer")
DEFAULT_DATA = "../shared/data/mnist/mnist.npz"


def eq19_loss(transformer: AnyOrderTransformer, tokens: torch.Tensor, order: torch.Tensor,
              num_source: torch.Tensor, label_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """-E log p over the targets of Eq. (19): the sum over each pair's targets, averaged over the batch and divided
    by L' (a constant, so that the scale does not depend on |T'|), the label's terms weighted by label_weight (1 is
    Eq. (19) itself). Also per-token NLL of y and of x for the log."""
    batch, length = tokens.shape
    logits = transformer(tokens, order, num_source)
    nll = F.cross_entropy(logits.flatten(0, 1), tokens.gather(1, order).flatten(), reduction="none").view(batch, length)
    used = target_slots(num_source, length)
    is_label = order == LABEL
    label_terms, image_terms = used & is_label, used & ~is_label
    loss = (nll * image_terms).sum() / (batch * length) + label_weight * (nll * label_terms).sum() / (batch * length)
    stats = {"nll_y": (nll * label_terms).sum() / label_terms.sum().clamp(min=1),
             "nll_x": (nll * image_terms).sum() / image_terms.sum().clamp(min=1)}
    return loss, stats


@torch.no_grad()
def embed_codes_from_codebook(transformer: AnyOrderTransformer, codebook: torch.Tensor) -> None:
    """Image-code embeddings = the codebook vectors through a random projection, scaled to std 0.02 overall: the
    transformer starts out knowing which codes look alike (the label embeddings keep their initialisation)."""
    projection = torch.randn(codebook.shape[1], transformer.cfg.dim, device=codebook.device)
    embedded = (codebook - codebook.mean(dim=0)) @ projection
    transformer.token_embed.weight[:len(codebook)] = embedded * (0.02 / embedded.std().clamp(min=1e-12))


class Run:
    """The state of one run: both networks, the stage, its optimizer and counters."""

    def __init__(self, cfg: DigitsTrainConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        self.tokenizer = VQTokenizer(cfg.model, cfg.ema_decay).to(device)
        self.transformer = AnyOrderTransformer(cfg.model).to(device)
        self.stage = STAGES[0]
        self.progress = Progress()
        self.optimizer = self._optimizer()

    def _optimizer(self) -> torch.optim.Optimizer:
        if self.stage == "tokenizer":
            return torch.optim.Adam(self.tokenizer.parameters(), lr=self.cfg.tok_lr)
        decay = [p for p in self.transformer.parameters() if p.ndim >= 2]
        no_decay = [p for p in self.transformer.parameters() if p.ndim < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": self.cfg.weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}], lr=self.cfg.lr, betas=(0.9, 0.98))

    def next_stage(self) -> None:
        self.stage = STAGES[1]
        self.progress.images_seen = 0
        if self.cfg.embed_from_codebook:
            embed_codes_from_codebook(self.transformer, self.tokenizer.quantizer.codebook)
        self.optimizer = self._optimizer()

    def state(self) -> dict:
        return {"stage": self.stage, "tokenizer": self.tokenizer.state_dict(),
                "transformer": self.transformer.state_dict(), "optimizer": self.optimizer.state_dict(),
                "step": self.progress.step, "images_seen": self.progress.images_seen,
                "rng_cpu": torch.get_rng_state(), "config": self.cfg.to_json()}

    def load(self, state: dict) -> None:
        # Compared field by field, so a field retired since the checkpoint was written does not block a resume.
        check_model_config(json.loads(state["config"])["model"], self.cfg.model, "the checkpoint")
        self.tokenizer.load_state_dict(state["tokenizer"])
        self.transformer.load_state_dict(state["transformer"])
        self.stage = state["stage"]
        self.optimizer = self._optimizer()
        wanted = [{k: v for k, v in group.items() if k != "params"} for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])
        for group, settings in zip(self.optimizer.param_groups, wanted):  # this run's settings win, as for the GAN
            group.update(settings)
        self.progress = Progress(int(state["step"]), int(state["images_seen"]))
        torch.set_rng_state(state["rng_cpu"])

    def sampling_model(self) -> DigitsModel:
        return DigitsModel(self.tokenizer, self.transformer, self.device)


TOKENIZER_FIELDS = ("codebook_size", "code_dim", "tok_channels")


def check_donor(run: Run, donor: DigitsModel, name_or_path: str, setting: str, fields: tuple[str, ...]) -> None:
    """Refuse a checkpoint to adopt a part from unless its `fields` of the model config equal this run's."""
    theirs, ours = ({f: getattr(cfg, f) for f in fields} for cfg in (donor.cfg, run.cfg.model))
    if theirs != ours:
        raise CheckpointError(f"{setting} {name_or_path}: its model is {theirs}, this run's model wants {ours}")


def adopt_parts(run: Run, cfg: DigitsTrainConfig) -> None:
    """Stage 1 taken from `tokenizer_from` (its tokenizer's weights, then straight to stage 2), and stage 2 started
    from `transformer_from`'s transformer (same model config) with a fresh optimizer. The config requires both to
    name one checkpoint, so it is read once."""
    if not cfg.tokenizer_from:
        return
    donor = DigitsModel.from_pretrained(cfg.tokenizer_from, "cpu")
    check_donor(run, donor, cfg.tokenizer_from, "tokenizer_from", TOKENIZER_FIELDS)
    run.tokenizer.load_state_dict(donor.tokenizer.state_dict())
    run.next_stage()
    print(f"tokenizer: adopted from {cfg.tokenizer_from}; stage 1 skipped", flush=True)
    if cfg.transformer_from:
        check_donor(run, donor, cfg.transformer_from, "transformer_from",
                    tuple(f.name for f in dataclasses.fields(run.cfg.model)))
        run.transformer.load_state_dict(donor.transformer.state_dict())
        print(f"transformer: starts from the weights of {cfg.transformer_from}", flush=True)


def reconstruction_accuracy(tokenizer: VQTokenizer, images: torch.Tensor, labels: torch.Tensor,
                            classifier_name: str) -> float | None:
    """Share of reconstructions the project's digit classifier gives the original's label (None: no classifier)."""
    if not classifier_name:
        return None
    from biglearn.classifier import load_classifier
    classifier, _ = load_classifier(classifier_name, "cpu")
    tokenizer.eval()
    recon = torch.cat([tokenizer.decode(tokenizer.encode(images[i:i + 500])).cpu() for i in range(0, len(images), 500)])
    return (classifier.predict_proba(recon).argmax(1) == labels).float().mean().item()


def train(cfg: DigitsTrainConfig) -> Path:
    """Train (or resume) the run in cfg.out; returns the run folder."""
    cfg.model.validate()
    device = resolve_device(cfg.device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    if device.type == "cpu":
        # With 2+ threads the CPU backward of the token/position gathers accumulates in thread order, so two identical
        # runs differed in the last bits and a resumed run could not equal an uninterrupted one.
        torch.use_deterministic_algorithms(True)
    try:
        return _train(cfg, device)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def _train(cfg: DigitsTrainConfig, device: torch.device) -> Path:
    run_dir = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    data = load_dataset("mnist", cfg.data, IMAGE_SIZE, "train", limit=cfg.limit_images)
    images, labels = data.images.to(device), data.labels.to(device)
    run = Run(cfg, device)
    found = list_checkpoints(run_dir) if cfg.resume == "auto" else [Path(cfg.resume)] if cfg.resume else []
    if found:
        run.load(load_training_state(found[-1]))
    else:
        refuse_used_folder(run_dir)
        adopt_parts(run, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(run_dir)
    (run_dir / "config.json").write_text(cfg.to_json())
    where = (f"resuming {run.stage} from {found[-1]}" if found
             else f"starting (no checkpoint in {run_dir} to resume)" if cfg.resume else "starting")
    print(f"{where}: {len(images)} training digits, device {device}, run dir {run_dir}", flush=True)
    if run.stage == STAGES[-1] and run.progress.images_seen >= cfg.kimg * 1000:
        print(f"nothing to train: the run has seen {run.progress.images_seen / 1000:g} kimg of its --kimg "
              f"{cfg.kimg:g}; pass a larger --kimg to go on", flush=True)
    reporter = Reporter(run_dir, True, resumed_at=run.progress.step)
    stop = StopRequest(enabled=True)
    start = time.time()
    sheet_digits = data.images[torch.randperm(len(data), generator=torch.Generator().manual_seed(123))[:20]]
    try:
        if run.stage == "tokenizer":
            if not _stage(run, cfg.tok_kimg, cfg.tok_batch, lambda: _tokenizer_step(run, images), reporter,
                          start, sheet_digits, run_dir, stop):
                return run_dir
            accuracy = reconstruction_accuracy(run.tokenizer, data.images, data.labels, cfg.classifier)
            if accuracy is not None:
                print(f"tokenizer: the classifier gives {accuracy:.4f} of training reconstructions their label",
                      flush=True)
            run.next_stage()
        run.tokenizer.eval()
        tokens = tokenize_digits(run.tokenizer, images, labels, cfg.model.codebook_size, cfg.shift_pixels)
        _stage(run, cfg.kimg, cfg.batch, lambda: _transformer_step(run, tokens, len(labels)), reporter, start,
               sheet_digits, run_dir, stop)
    finally:
        stop.close()
        reporter.close()
    return run_dir


def tokenize_digits(tokenizer: VQTokenizer, images: torch.Tensor, labels: torch.Tensor, codebook_size: int,
                    shift_pixels: int = 0) -> torch.Tensor:
    """Every training digit as [y + K, code_1, ..., code_49]: the sequences of stage 2. With shift_pixels s, every
    digit moved by (dx, dy) for each dx, dy in -s..s, unmoved first: (2s + 1)^2 sequences per digit."""
    moves = sorted(range(-shift_pixels, shift_pixels + 1), key=abs)
    codes = [tokenizer.encode(shifted(images[i:i + 1000], dx, dy)).flatten(1)
             for dy in moves for dx in moves for i in range(0, len(images), 1000)]
    copies = len(moves) ** 2
    return torch.cat([labels.repeat(copies)[:, None] + codebook_size, torch.cat(codes)], dim=1)


def shifted(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """images [N, C, H, W] moved dx px right and dy px down; the uncovered border is 0 (MNIST's background)."""
    out = torch.zeros_like(images)
    h, w = images.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def _tokenizer_step(run: Run, images: torch.Tensor) -> dict[str, torch.Tensor]:
    batch = images[torch.randint(len(images), (run.cfg.tok_batch,), device=images.device)]
    loss, stats = run.tokenizer.training_loss(batch, run.cfg.commitment)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return {"loss": loss.detach(), **stats}


def transformer_lr(cfg: DigitsTrainConfig, images_seen: int) -> float:
    """Linear warm-up over warmup_kimg, constant, then a linear fall to 0 over the last cooldown_kimg."""
    scale = min(1.0, images_seen / (cfg.warmup_kimg * 1000)) if cfg.warmup_kimg else 1.0
    if cfg.cooldown_kimg:
        scale *= min(1.0, max(0.0, cfg.kimg * 1000 - images_seen) / (cfg.cooldown_kimg * 1000))
    return cfg.lr * scale


def unmoved_unless_classifying(rows: torch.Tensor, order: torch.Tensor, num_source: torch.Tensor,
                               digits: int) -> torch.Tensor:
    """Rows of tokenize_digits' table (copy after copy: row r is digit r % digits) -> the unmoved copy of the same
    digit wherever the pair generates; classification pairs (T' = {y} alone, so S' = every image token) keep theirs.
    (|S'| = 49 alone does not tell: y with 48 image tokens is a generative pair of the same size.)"""
    classifying = (num_source == order.shape[1] - 1) & (order[:, -1] == LABEL)
    return torch.where(classifying, rows, rows % digits)


def _transformer_step(run: Run, tokens: torch.Tensor, digits: int) -> dict[str, torch.Tensor]:
    cfg = run.cfg
    rows = torch.randint(len(tokens), (cfg.batch,), device=tokens.device)
    order, num_source = sample_pairs(cfg.batch, cfg, device=tokens.device)
    if cfg.shift_classify_only:
        rows = unmoved_unless_classifying(rows, order, num_source, digits)
    batch = tokens[rows]
    for group in run.optimizer.param_groups:
        group["lr"] = transformer_lr(cfg, run.progress.images_seen + cfg.batch)
    loss, stats = eq19_loss(run.transformer, batch, order, num_source, cfg.label_weight)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.transformer.parameters(), cfg.grad_clip)
    run.optimizer.step()
    return {"loss": loss.detach(), **{k: v.detach() for k, v in stats.items()}}


def _stage(run: Run, kimg: float, batch: int, step, reporter: Reporter, start: float, sheet_digits: torch.Tensor,
           run_dir: Path, stop: StopRequest) -> bool:
    """Run the current stage to `kimg`; False when --max-minutes or Ctrl-C stopped it (with a checkpoint)."""
    cfg, progress = run.cfg, run.progress
    total, tick_images = int(kimg * 1000), max(int(cfg.tick_kimg * 1000), 1)
    module = run.tokenizer if run.stage == "tokenizer" else run.transformer
    module.train()
    ticks, tick_start, tick_images_start, sums, count = 0, time.time(), progress.images_seen, {}, 0
    while progress.images_seen < total:
        stats = step()
        for key, value in stats.items():
            sums[key] = sums.get(key, 0.0) + value
        count += 1
        progress.step += 1
        progress.images_seen += batch
        done = progress.images_seen >= total
        out_of_time = past_time_limit(cfg.max_minutes, start) or stop.requested
        if progress.images_seen - tick_images_start < tick_images and not done and not out_of_time:
            continue
        record = {k: float(v) / count for k, v in sums.items()}  # the tick's one host sync
        if not math.isfinite(record["loss"]):
            raise TrainingDiverged(f"the {run.stage} loss became non-finite at step {progress.step}; "
                                   f"resume from the last checkpoint with a lower lr")
        now = time.time()
        speed = (progress.images_seen - tick_images_start) / max(now - tick_start, 1e-9)
        record = {"stage": run.stage, "kimg": progress.images_seen / 1000, "step": progress.step,
                  "img_per_s": speed, **record}
        details = " ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("stage", "kimg", "step", "img_per_s"))
        reporter.tick(record, f"{run.stage} kimg {record['kimg']:8.2f}/{kimg:g} | {speed:6.0f} img/s | {details} | "
                              f"ETA {format_eta((total - progress.images_seen) / max(speed, 1e-9))}")
        ticks += 1
        sums, count, tick_start, tick_images_start = {}, 0, now, progress.images_seen
        if ticks % cfg.snap_ticks == 0 or done or out_of_time:
            snapshot(run, run_dir, sheet_digits)
            module.train()
        if out_of_time:
            why = "on Ctrl-C" if stop.requested else f"after --max-minutes {cfg.max_minutes:g}"
            print(f"stopping {why}; resume with --resume auto", flush=True)
            return False
    return True


def snapshot(run: Run, run_dir: Path, sheet_digits: torch.Tensor) -> None:
    """Training checkpoint, sheets, and (stage 2) the exported sampling checkpoint."""
    save_training_state(checkpoint_path(run_dir, run.progress.step), run.state())
    prune_checkpoints(run_dir, run.cfg.keep_checkpoints)
    tag = f"{run.stage}-{run.progress.images_seen:09d}"
    run.tokenizer.eval()
    save_png(figures.reconstructions(run.tokenizer, sheet_digits), run_dir / "samples" / f"recon-{tag}.png")
    if run.stage == "transformer":
        run.transformer.eval()
        model = run.sampling_model()
        save_png(figures.fig11(model, seed=0), run_dir / "samples" / f"fig11-{tag}.png")
        model.save(run_dir / "export", {"preset": run.cfg.preset, "kimg": run.progress.images_seen / 1000,
                                        "step": run.progress.step, **weights_origin(run.cfg)})


def weights_origin(cfg: DigitsTrainConfig) -> dict:
    """What the export says of where its weights began: the tokenizer trained here (kimg) or adopted, and the
    transformer's starting weights when adopted."""
    origin = {"tokenizer_from": cfg.tokenizer_from} if cfg.tokenizer_from else {"tokenizer_kimg": cfg.tok_kimg}
    return {**origin, "transformer_from": cfg.transformer_from} if cfg.transformer_from else origin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the multi-modal MNIST model (VQ tokenizer, then Eq. (19)).")
    parser.add_argument("--preset", help="demo (the shipped checkpoint; the default), wide (its successor in "
                        "training), ci or tiny (tests); when resuming, the run's own settings")
    parser.add_argument("--data", help=f"MNIST .npz or torchvision folder (default {DEFAULT_DATA})")
    parser.add_argument("--out", help="run directory (default runs/digits-PRESET)")
    parser.add_argument("--resume", help="'auto' (newest checkpoint in --out) or a checkpoint path")
    parser.add_argument("--kimg", type=float, help="transformer training length in thousands of images")
    parser.add_argument("--tok-kimg", type=float, dest="tok_kimg", help="tokenizer training length")
    parser.add_argument("--batch", type=int, help="transformer batch size")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--max-minutes", type=float, dest="max_minutes", help="stop with a checkpoint after this")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config value, e.g. --set dim=256 --set classify_prob=0.2")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config as JSON and exit")
    args = parser.parse_args(argv)
    try:
        out = args.out or f"runs/digits-{args.preset or 'demo'}"
        saved = saved_config(args.resume, Path(out))
        if saved is None:
            cfg = preset(args.preset or "demo")
            cfg.out, cfg.data = out, DEFAULT_DATA
        else:  # the run's own settings (see biglearn.cli.saved_config)
            cfg = DigitsTrainConfig.from_dict(saved)
            check_resumed_preset(cfg.preset, args.preset)
            cfg.out = args.out or cfg.out
        for name in ("data", "resume", "kimg", "tok_kimg", "batch", "device", "seed", "max_minutes"):
            if getattr(args, name) is not None:
                setattr(cfg, name, getattr(args, name))
        apply_overrides(cfg, args.set)
        cfg.validate()
        resolve_device(cfg.device)
    except ValueError as exc:  # CheckpointError included
        parser.error(str(exc))
    return run_training(train, cfg, args.dry_run)
