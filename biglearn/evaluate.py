"""Measure a checkpoint against the paper's claims (issue 3): one command, numbers + figures.

    python -m biglearn.evaluate --checkpoint mnist --out runs/eval-mnist [--data PATH] [--n 1000] [--k 8]

All real images of the chosen split are shuffled once and cut into two disjoint sets of n: the reference A and
the second set B. Everything generated is compared with A; B gives the real-vs-real floor and supplies
the x_S of every completion, so a completion never copies the images it is compared with.
  - MNIST: Fréchet distance + KID of the digit classifier's features (joint samples vs A), class coverage,
    completion/label agreement for r = 0.0..0.9 with random and raster S, beside the same agreement of two
    model-free completions on the same S (S alone; T from the nearest training digit: metrics/nearest.py).
  - RGB (CelebA): SWD of joint samples and of completions at each r vs A, beside the floor (B vs A) and a
    per-pixel Gaussian baseline.
  - Both: diversity and error on T vs r with K noises per image (biglearn.metrics.diversity).
Writes OUT/metrics.json, OUT/report.md and PNG figures (biglearn.figures).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from biglearn import figures
from biglearn.checkpoint import CheckpointError
from biglearn.classifier import class_coverage, load_classifier
from biglearn.data import DataError, ImageSet, load_dataset, load_faces
from biglearn.inference import REPO_CHECKPOINTS, Completer, resolve_device
from biglearn.metrics.diversity import complete_in_batches, diversity_sweep, joint_samples, source_masks
from biglearn.metrics.features import frechet_distance, kernel_inception_distance
from biglearn.metrics.nearest import NearestFill, source_only
from biglearn.metrics.swd import SWDReference
from biglearn.patches import pixel_mask
from biglearn.report import REFERENCE_NAMES, write_report
from biglearn.sheets import SHEET_RATIOS, ratio_sweep, tile

REPO = REPO_CHECKPOINTS.parent
SHARED_DATA = REPO.parent / "shared" / "data"
DEFAULT_DATA = {"mnist": SHARED_DATA / "mnist" / "mnist.npz", "celeba": SHARED_DATA / "celeba"}
IGNORED_OUTPUTS = ("runs", "outputs")  # git-ignored: the only places in the repo for sheets of real faces
MODES = ("random", "raster")


@dataclass
class EvalConfig:
    checkpoint: str
    out: Path
    data: str = ""                   # empty: the shared copy of the checkpoint's dataset
    split: str = "test"
    n: int = 1000                    # images per set (reference A, second set B, joint samples)
    k: int = 8                       # noises per image for diversity
    diversity_images: int = 50
    device: str = "auto"
    seed: int = 0
    batch: int = 256
    classifier: str = "mnist-classifier"
    ood: str = str(SHARED_DATA / "ood")
    ood_images: int = 2              # per out-of-domain set in Fig. 5(c)
    repo_safe: bool = False          # only figures that may be committed: no real faces, no OOD images
    ratios: tuple[float, ...] = field(default=SHEET_RATIOS)


def check_settings(cfg: EvalConfig) -> None:
    resolve_device(cfg.device)
    for name, least in (("n", 2), ("k", 2), ("diversity_images", 1), ("batch", 1)):
        if getattr(cfg, name) < least:
            raise ValueError(f"--{name.replace('_', '-')} must be at least {least}, got {getattr(cfg, name)}")
    if cfg.ood != EvalConfig.ood and not Path(cfg.ood).is_dir():  # the default may be absent (a user's clone)
        raise ValueError(f"--ood {cfg.ood} is not a folder of out-of-domain image sets")


def check_output_folder(cfg: EvalConfig) -> None:
    """Refuse to write sheets of real faces / OOD images into tracked parts of the repo (licensing)."""
    if cfg.repo_safe:
        return
    try:
        inside = Path(cfg.out).resolve().relative_to(REPO.resolve())
    except ValueError:
        return
    if not inside.parts or inside.parts[0] not in IGNORED_OUTPUTS:
        raise ValueError(f"--out {cfg.out} is inside the repository: figures of real CelebA or out-of-domain "
                         f"images may not be committed. Write to {'/ or '.join(IGNORED_OUTPUTS)}/ or pass --repo-safe")


def real_sets(completer: Completer, cfg: EvalConfig) -> tuple[ImageSet, ImageSet]:
    """Two disjoint, equally sized real sets (A, B) of at most cfg.n images each, drawn from the whole split: the
    first images of a file are not a fair sample (MNIST's test file is ordered by source, NIST's training writers
    first, and 1,000 of its first 2,000 images held 7.6% zeros against 11.8% twos)."""
    model = completer.cfg
    data = load_dataset(model.dataset, cfg.data or DEFAULT_DATA[model.dataset], model.image_size, cfg.split)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed))
    n = min(cfg.n, len(data) // 2)
    if n < 2:
        raise DataError(f"the {cfg.split} split of {cfg.data or DEFAULT_DATA[model.dataset]} has {len(data)} "
                        "image(s); need at least 4")

    def subset(index: torch.Tensor) -> ImageSet:
        return ImageSet(data.images[index], None if data.labels is None else data.labels[index])
    return subset(order[:n]), subset(order[n:2 * n])


def completion_seed(cfg: EvalConfig, mode: str, ratio_index: int) -> int:
    return cfg.seed * 10_000 + 100 * MODES.index(mode) + ratio_index


def completion_masks(completer: Completer, count: int, mode: str, ratio_index: int, cfg: EvalConfig
                     ) -> torch.Tensor:
    """The [count, L] source masks of the completions at ratio cfg.ratios[ratio_index], seeded per (mode, ratio)."""
    return source_masks(completer, mode, cfg.ratios[ratio_index], count, completion_seed(cfg, mode, ratio_index))


def completions(completer: Completer, images: torch.Tensor, mode: str, ratio_index: int, cfg: EvalConfig
                ) -> torch.Tensor:
    """Completions of `images` at ratio cfg.ratios[ratio_index] (one S per image), seeded per (mode, ratio)."""
    mask = completion_masks(completer, len(images), mode, ratio_index, cfg)
    # Another seed for the noise: torch's randn of a seed is built from the same draws as its rand (the mask), so
    # one seed would tie z to S.
    noise = completer.noise(len(images), completion_seed(cfg, mode, ratio_index) + 500)
    return complete_in_batches(completer, images, mask, noise, cfg.batch)


def reference_fills(completer: Completer, cfg: EvalConfig, names: tuple[str, ...]) -> dict:
    """The model-free completions of metrics/nearest.py named, by name; the nearest training image is left out when
    the evaluated split is the training split itself (each image would find itself)."""
    fills = {"source_only": source_only} if "source_only" in names else {}
    if cfg.split != "train" and "nearest_training_image" in names:
        model = completer.cfg
        pool = load_dataset(model.dataset, cfg.data or DEFAULT_DATA[model.dataset], model.image_size, "train").images
        fills["nearest_training_image"] = NearestFill(pool)
    return fills


def model_free_completions(completer: Completer, cfg: EvalConfig, second: ImageSet, fills: dict, measure,
                           modes: tuple[str, ...] = MODES) -> dict:
    """{fill name: {mode: [measure(filled images) per ratio]}}, each fill completing the second set on the same S
    as the model's completions (each S drawn once, completed by every fill)."""
    result = {name: {mode: [] for mode in modes} for name in fills}
    for mode in modes:
        for i in range(len(cfg.ratios)):
            masks = completion_masks(completer, len(second.images), mode, i, cfg)
            keep = pixel_mask(masks, completer.cfg.patch_size)
            for name, fill in fills.items():
                result[name][mode].append(measure(fill(second.images, keep)))
    return result


def reference_agreement(completer: Completer, cfg: EvalConfig, second: ImageSet, classifier) -> dict:
    """Label agreement of S alone (T black) and of T from the nearest training digit, on the model's S."""
    def agreement(filled: torch.Tensor) -> float:
        return (classifier.predict_proba(filled).argmax(1) == second.labels).float().mean().item()
    fills = reference_fills(completer, cfg, ("source_only", "nearest_training_image"))
    return model_free_completions(completer, cfg, second, fills, agreement)


def evaluate_mnist(completer: Completer, cfg: EvalConfig, ref: ImageSet, second: ImageSet, joint: torch.Tensor
                   ) -> dict:
    classifier, meta = load_classifier(cfg.classifier, completer.device)
    feats_ref, _ = classifier.embed(ref.images)
    feats_second, probs_second = classifier.embed(second.images)
    feats_joint, probs_joint = classifier.embed(joint)
    kid_joint, kid_second = (kernel_inception_distance(f, feats_ref, seed=cfg.seed) for f in (feats_joint,
                                                                                               feats_second))
    reads = {mode: [classifier.predict_proba(completions(completer, second.images, mode, i, cfg)).argmax(1)
                    for i in range(len(cfg.ratios))] for mode in MODES}
    agreement = {mode: [(read == second.labels).float().mean().item() for read in reads[mode]] for mode in MODES}
    return {
        "classifier": {"name": cfg.classifier, "test_accuracy": meta.get("test_accuracy"),
                       "accuracy_on_second_set": (probs_second.argmax(1) == second.labels).float().mean().item()},
        "joint": {"frechet": frechet_distance(feats_joint, feats_ref), "kid": kid_joint[0], "kid_std": kid_joint[1],
                  **class_coverage(probs_joint)},
        "real_floor": {"frechet": frechet_distance(feats_second, feats_ref), "kid": kid_second[0],
                       "kid_std": kid_second[1], **class_coverage(probs_second)},
        "agreement": agreement,
        "agreement_references": reference_agreement(completer, cfg, second, classifier),
        **({"at_half": digit_breakdown(reads["random"][cfg.ratios.index(0.5)], second.labels)}
           if 0.5 in cfg.ratios else {}),
    }


def digit_breakdown(read: torch.Tensor, labels: torch.Tensor) -> dict:
    """Which digits a completion loses: agreement per true digit (None where the set has none), and the share of
    completions the classifier reads as each digit (a digit G over-draws reads above its share of the set)."""
    return {"agreement_by_digit": [(read[labels == d] == d).float().mean().item() if (labels == d).any() else None
                                   for d in range(10)],
            "read_as": [(read == d).float().mean().item() for d in range(10)],
            "true_share": [(labels == d).float().mean().item() for d in range(10)]}


def gaussian_baseline(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Per-pixel independent Gaussians with the set's per-pixel mean and std: a trivial generator."""
    x = figures.to_float(images)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return (x.mean(0) + x.std(0) * noise).clamp(0, 1)


def evaluate_swd(completer: Completer, cfg: EvalConfig, ref: ImageSet, second: ImageSet, joint: torch.Tensor
                 ) -> dict:
    """Every set against the reference A, whose descriptors are projected and sorted once."""
    reference = SWDReference(ref.images, seed=cfg.seed)
    return {
        "resolutions": reference.resolutions,
        "real_floor": reference.compare(second.images),
        "gaussian_baseline": reference.compare(gaussian_baseline(second.images, cfg.seed)),
        "joint": reference.compare(joint),
        "completion": {mode: [reference.compare(completions(completer, second.images, mode, i, cfg))
                              for i in range(len(cfg.ratios))] for mode in MODES},
        # Real pixels on T, seams and all: what a lookup table scores, to read the completions' SWD against.
        # Random S only (the mode of the targets): each S costs a distance to every training face.
        "completion_references": model_free_completions(
            completer, cfg, second, reference_fills(completer, cfg, ("nearest_training_image",)),
            reference.compare, modes=("random",)),
    }


def targets(dataset: str, metrics: dict) -> list[dict]:
    """The quality targets of issue 3, each with its measured value."""
    ratios = metrics["ratios"]
    rho = metrics["diversity"]["random"]["spearman_rho"]
    found: list[tuple[str, float, str, bool]] = []
    if dataset == "mnist":
        m = metrics["mnist"]
        agree = m["agreement"]["random"]
        found += [
            ("joint class-histogram entropy (nats)", m["joint"]["entropy"], ">= 2.2", m["joint"]["entropy"] >= 2.2),
            ("joint mean max-probability", m["joint"]["mean_max_prob"], ">= 0.9", m["joint"]["mean_max_prob"] >= 0.9),
            ("agreement, random S, r = 0.5", agree[ratios.index(0.5)], ">= 0.90", agree[ratios.index(0.5)] >= 0.9),
            ("agreement, random S, r = 0.9", agree[ratios.index(0.9)], ">= 0.97", agree[ratios.index(0.9)] >= 0.97),
        ]
    else:
        s = metrics["swd"]
        floor, joint = s["real_floor"]["average"], s["joint"]["average"]
        worst = max(c["average"] for r, c in zip(ratios, s["completion"]["random"]) if r >= 0.5)
        found += [
            ("joint SWD / real-vs-real floor", joint / floor, "<= 3", joint / floor <= 3),
            ("worst completion SWD at r >= 0.5 (random S) / joint SWD", worst / joint, "< 1", worst < joint),
        ]
    found.append(("diversity Spearman rho vs r (random S)", rho, "<= -0.9", rho <= -0.9))
    return [{"name": n, "value": v, "target": t, "passed": bool(p)} for n, v, t, p in found]


def write_figures(completer: Completer, cfg: EvalConfig, second: ImageSet, joint: torch.Tensor, metrics: dict
                  ) -> list[dict]:
    """All PNGs. Each shows `generated` pixels only, real `dataset` images, or `ood` images; only the first,
    and MNIST digits, may be committed (CelebA and the OOD sets forbid redistribution)."""
    out, columns = Path(cfg.out), len(SHEET_RATIOS) + 1
    real = second.images
    digits = completer.cfg.dataset == "mnist"
    written = []

    def add(name: str, what: str, shows: str, make) -> None:
        committable = shows == "generated" or (shows == "dataset" and digits)
        if cfg.repo_safe and not committable:
            return
        figures.save_sheet(make(), out, name)
        written.append({"file": name, "what": what, "shows": shows, "committable": committable})

    add("joint.png", "64 joint samples (S empty)", "generated", lambda: tile(joint[:64], 8))
    for mode in MODES:
        add(f"fig3-{mode}-generated.png", f"Fig. 3, {mode} S, completing the model's own joint samples", "generated",
            lambda mode=mode: tile(ratio_sweep(completer, joint[:8], mode, seed=cfg.seed), columns))
        add(f"fig3-{mode}.png", f"Fig. 3, {mode} S, completing real {cfg.split} images", "dataset",
            lambda mode=mode: tile(ratio_sweep(completer, real[:8], mode, seed=cfg.seed), columns))
    add("fig4-many-s.png", "Fig. 4 left: one image, many S (rows: x_S, completion; S: random 0.1/0.3/0.5/0.7, "
        "raster 0.25/0.5, centre, frame, left half, bottom half, checkerboard)", "dataset",
        lambda: figures.fig4_many_sources(completer, real[:2], seed=cfg.seed))
    add("fig4-many-noises.png", "Fig. 4 right: one S, many noises (x_S, completions, ground truth)", "dataset",
        lambda: figures.fig4_many_noises(completer, real[:3], seed=cfg.seed))
    add("fig5-relocated.png", "Fig. 5(a): central patches relocated to the corner / duplicated", "dataset",
        lambda: figures.abused_sheet(completer, figures.relocated_sources(completer, real[:3]), [real[:3]]))
    add("fig5-mixed.png", "Fig. 5(b): patches mixed from two images", "dataset",
        lambda: figures.abused_sheet(completer, figures.mixed_sources(completer, real[:3], real[3:6]),
                                     [real[:3], real[3:6]]))
    ood = ood_images(completer, cfg)
    if ood is not None:
        add("fig5-ood.png", f"Fig. 5(c): out-of-domain x_S from {cfg.ood} (random / raster S at r=0.5)", "ood",
            lambda: figures.ood_sheet(completer, ood, seed=cfg.seed))

    def plot(name: str, what: str, series: dict, ylabel: str) -> None:
        figures.line_plot(series, out / name, title=what, xlabel="S-ratio r", ylabel=ylabel)
        written.append({"file": name, "what": what, "shows": "generated", "committable": True})

    for key, label in (("diversity", "mean pairwise RMS distance on T"), ("error", "RMS error to truth on T")):
        plot(f"plot-{key}.png", f"{key} vs S-ratio ({cfg.k} noises per image)",
             {f"{mode} S": (cfg.ratios, metrics["diversity"][mode][key]) for mode in MODES}, label)
    if digits:
        series = {f"{mode} S": (cfg.ratios, metrics["mnist"]["agreement"][mode]) for mode in MODES}
        for name, rows in metrics["mnist"]["agreement_references"].items():
            series[f"random S, {REFERENCE_NAMES[name]}"] = (cfg.ratios, rows["random"])
        plot("plot-agreement.png", "completion/label agreement vs S-ratio", series, "agreement")
    else:
        s = metrics["swd"]
        series = {f"completions, {mode} S": (cfg.ratios, [c["average"] for c in s["completion"][mode]])
                  for mode in MODES}
        for name, rows in s.get("completion_references", {}).items():
            series[f"random S, {REFERENCE_NAMES[name]}"] = (cfg.ratios, [c["average"] for c in rows["random"]])
        for name, key in (("joint samples", "joint"), ("real vs real", "real_floor")):
            series[name] = (cfg.ratios, [s[key]["average"]] * len(cfg.ratios))
        plot("plot-swd.png", "SWD (x1e3, mean over levels) vs S-ratio", series, "SWD")
    return written


def ood_images(completer: Completer, cfg: EvalConfig) -> torch.Tensor | None:
    """cfg.ood_images images from each sub-folder of cfg.ood, at the model's size and channels."""
    root = Path(cfg.ood)
    if not cfg.ood or not root.is_dir():
        return None
    model = completer.cfg
    sets = [load_faces(folder, model.image_size, "all", channels=model.channels, limit=cfg.ood_images).images
            for folder in sorted(p for p in root.iterdir() if p.is_dir())]
    return torch.cat(sets) if sets else None


def evaluate(cfg: EvalConfig) -> dict:
    """Run every measurement and figure for one checkpoint; returns the metrics written to OUT/metrics.json."""
    check_settings(cfg)
    check_output_folder(cfg)
    try:  # now, not after minutes of measuring
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot write to --out {cfg.out}: {exc.strerror or exc}") from None
    start = time.time()
    completer = Completer.from_pretrained(cfg.checkpoint, device=cfg.device)
    model = completer.cfg
    ref, second = real_sets(completer, cfg)
    joint = joint_samples(completer, len(ref), cfg.seed + 1, cfg.batch)
    metrics: dict = {"checkpoint": str(cfg.checkpoint), "checkpoint_info": completer.meta, "dataset": model.dataset,
                     "data": str(cfg.data or DEFAULT_DATA[model.dataset]), "split": cfg.split, "n": len(ref),
                     "k": cfg.k, "device": str(completer.device), "ratios": list(cfg.ratios),
                     "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}}
    seconds = {}
    if model.dataset == "mnist":
        metrics["mnist"] = evaluate_mnist(completer, cfg, ref, second, joint)
    else:
        metrics["swd"] = evaluate_swd(completer, cfg, ref, second, joint)
    seconds["quality"] = time.time() - start
    div_images = second.images[:cfg.diversity_images]
    metrics["diversity"] = {mode: diversity_sweep(completer, div_images, cfg.ratios, k=cfg.k, mode=mode,
                                                  seed=cfg.seed, batch=cfg.batch) for mode in MODES}
    seconds["diversity"] = time.time() - start - seconds["quality"]
    metrics["targets"] = targets(model.dataset, metrics)
    metrics["figures"] = write_figures(completer, cfg, second, joint, metrics)
    seconds["total"] = time.time() - start
    metrics["seconds"] = seconds
    out = Path(cfg.out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_report(metrics, out / "report.md")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate a BigLearn-GAN checkpoint (metrics.json, report.md, PNGs).")
    parser.add_argument("--checkpoint", required=True, help="a name under checkpoints/ or a folder path")
    parser.add_argument("--data", default="", help="dataset path (npz, image folder or tar shards); "
                                                   "default: the shared copy of the checkpoint's dataset")
    parser.add_argument("--out", required=True, help="output folder (in the repo: under runs/ or outputs/)")
    parser.add_argument("--n", type=int, default=1000, help="images per set (capped at half the split)")
    parser.add_argument("--k", type=int, default=8, help="noises per image for diversity (>= 8 in the issue)")
    parser.add_argument("--diversity-images", type=int, default=50, dest="diversity_images")
    parser.add_argument("--split", default="test", choices=["train", "test", "all"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=256, help="images per generator call")
    parser.add_argument("--classifier", default="mnist-classifier", help="MNIST classifier name or folder")
    parser.add_argument("--ood", default=str(SHARED_DATA / "ood"), help="folder of out-of-domain image sets")
    parser.add_argument("--repo-safe", action="store_true", dest="repo_safe",
                        help="write only figures that may be committed (no real faces, no OOD images)")
    args = parser.parse_args(argv)
    return run_evaluation(evaluate, EvalConfig(**{**vars(args), "out": Path(args.out)}))


def run_evaluation(evaluate_fn, cfg) -> int:
    """Run an evaluator, print each target as PASS / MISS; the user's problems become a message and exit code 2."""
    try:
        metrics = evaluate_fn(cfg)
    except (CheckpointError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for target in metrics["targets"]:
        print(f"{'PASS' if target['passed'] else 'MISS'}  {target['name']}: {target['value']:.4g} "
              f"(target {target['target']})")
    print(f"wrote {cfg.out}/metrics.json, report.md and {len(metrics['figures'])} figures "
          f"in {metrics['seconds']['total']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
