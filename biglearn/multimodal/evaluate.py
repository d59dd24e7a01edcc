"""Measure the multi-modal MNIST model (issue 6) on the MNIST test split: one command, numbers + figures.

    python -m biglearn.multimodal.evaluate --checkpoint digits-multimodal --out runs/eval-digits

  - tokenizer: the digit classifier's label for reconstructions vs the true label;
  - classification p(y | x): accuracy on the whole split;
  - label-conditioned generation p(x | y): the classifier agrees with the requested label;
  - joint generation p(x, y): class histogram entropy, Fréchet/KID of classifier features vs real digits (beside
    the real-vs-real floor), and whether the sampled y matches the classifier's reading of the sampled x;
  - completion/label agreement vs S-ratio, random and raster S, without and with the true label given; and the
    model's own p(y | x_S) accuracy vs S-ratio.
Writes OUT/metrics.json, OUT/report.md, the Fig. 11 sheet, completion sheets and plots (all committable: MNIST).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from biglearn.classifier import DigitClassifier, class_coverage, load_classifier
from biglearn.data import load_dataset
from biglearn.evaluate import DEFAULT_DATA, MODES, run_evaluation
from biglearn.figures import line_plot, save_sheet
from biglearn.metrics.diversity import source_masks
from biglearn.metrics.features import frechet_distance, kernel_inception_distance
from biglearn.multimodal import figures
from biglearn.multimodal.config import IMAGE_SIZE, NUM_LABELS
from biglearn.multimodal.model import DigitsModel
from biglearn.report import markdown_table
from biglearn.sheets import SHEET_RATIOS, tile


@dataclass
class DigitsEvalConfig:
    checkpoint: str
    out: Path
    data: str = ""
    split: str = "test"
    n: int = 1000                  # joint samples, and the real reference set they are compared with
    per_label: int = 100           # label-conditioned samples per digit
    n_complete: int = 200          # digits completed at each (ratio, mode, with/without label)
    n_variants: int = 300          # samples per sampling variant (order x temperature x guidance), joint and by label
    temperature: float = 1.0
    guidance: float = 0.0          # classifier-free guidance weight of every sample but the variants' (model.fill)
    device: str = "auto"
    seed: int = 0
    batch: int = 500
    classifier: str = "mnist-classifier"
    ratios: tuple[float, ...] = field(default=SHEET_RATIOS)


def in_batches(fn, count: int, batch: int) -> list:
    return [fn(start, min(start + batch, count)) for start in range(0, count, batch)]


def agreement(classifier: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (classifier.predict_proba(images).argmax(1) == labels.cpu()).float().mean().item()


def completion_agreement(model: DigitsModel, classifier: DigitClassifier, images: torch.Tensor,
                         labels: torch.Tensor, cfg: DigitsEvalConfig) -> dict:
    """For each mode and ratio: classifier agreement of completions with the true label, without and with y given,
    and the accuracy of the model's own p(y | x_S)."""
    result = {}
    for mode in MODES:
        rows = {"unlabelled": [], "labelled": [], "p_y_given_xs": []}
        for i, ratio in enumerate(cfg.ratios):
            seed = cfg.seed * 10_000 + 100 * MODES.index(mode) + i
            keep = source_masks(model, mode, ratio, len(images), seed)
            for key, given in (("unlabelled", None), ("labelled", labels)):
                done = torch.cat(in_batches(lambda a, b: model.complete(
                    images[a:b], keep[a:b], labels=None if given is None else given[a:b],
                    temperature=cfg.temperature, seed=seed + a, guidance=cfg.guidance)[0], len(images), cfg.batch))
                rows[key].append(agreement(classifier, done, labels))
            probs = model.label_probs(model.encode(images), keep)
            rows["p_y_given_xs"].append((probs.argmax(1) == labels).float().mean().item())
        result[mode] = rows
    return result


VARIANTS = tuple((order, temperature, guidance) for order in ("random", "raster") for temperature in (1.0, 0.8)
                 for guidance in (0.0, 1.0))


def sampling_variants(model: DigitsModel, classifier: DigitClassifier, cfg: DigitsEvalConfig) -> list[dict]:
    """Label-conditioned agreement and joint-sample quality for each sampling order, temperature and guidance
    weight: all are the user's choice at sampling time (Eq. (19) trains every order; "raster" generates y first)."""
    wanted = torch.arange(NUM_LABELS).repeat_interleave(max(1, cfg.n_variants // NUM_LABELS))
    rows = []
    for order, temperature, guidance in VARIANTS:
        settings = {"temperature": temperature, "order": order, "guidance": guidance}
        conditioned, _ = model.generate(len(wanted), labels=wanted, seed=cfg.seed + 7, **settings)
        joint, joint_labels = model.generate(len(wanted), seed=cfg.seed + 8, **settings)
        probs = classifier.predict_proba(joint)
        rows.append({**settings,
                     "conditioned_agreement": agreement(classifier, conditioned, wanted),
                     "joint_label_image_agreement": (probs.argmax(1) == joint_labels).float().mean().item(),
                     **{f"joint_{k}": v for k, v in class_coverage(probs).items() if k != "histogram"}})
    return rows


def targets(metrics: dict) -> list[dict]:
    """Issue 17's quality targets (issue 6's tokenizer one kept), at the evaluated temperature and guidance."""
    found = [
        ("tokenizer reconstructions keep their label", metrics["tokenizer"]["reconstruction_agreement"], ">= 0.98",
         0.98),
        ("classification accuracy p(y | x)", metrics["classification"]["accuracy"], ">= 0.985", 0.985),
        ("label-conditioned generation agreement p(x | y)", metrics["conditioned"]["agreement"], ">= 0.95", 0.95),
        ("joint generation class entropy (nats)", metrics["joint"]["entropy"], ">= 2.2", 2.2),
        ("joint samples in a random order: sampled y = classifier's reading",
         metrics["joint"]["label_image_agreement"], ">= 0.9", 0.9),
        ("completion with the label from nothing (r = 0, random S)", metrics["completion"]["random"]["labelled"][0],
         ">= 0.93", 0.93),
    ]
    return [{"name": n, "value": v, "target": t, "passed": bool(v >= bound)} for n, v, t, bound in found]


def evaluate(cfg: DigitsEvalConfig) -> dict:
    start = time.time()
    model = DigitsModel.from_pretrained(cfg.checkpoint, device=cfg.device)
    classifier, classifier_meta = load_classifier(cfg.classifier, "cpu")
    data = load_dataset("mnist", cfg.data or DEFAULT_DATA["mnist"], IMAGE_SIZE, cfg.split)
    shuffled = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed))
    images, labels = data.images[shuffled], data.labels[shuffled]
    n = min(cfg.n, len(images) // 2)
    ref, second = images[:n], images[n:2 * n]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict = {"checkpoint": str(cfg.checkpoint), "checkpoint_info": {k: v for k, v in model.meta.items()
                                                                            if k != "model"},
                     "data": str(cfg.data or DEFAULT_DATA["mnist"]), "split": cfg.split, "n": n,
                     "device": str(model.device), "ratios": list(cfg.ratios),
                     "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                     "classifier": {"name": cfg.classifier, "test_accuracy": classifier_meta.get("test_accuracy")}}

    recon = torch.cat(in_batches(lambda a, b: model.decode(model.encode(images[a:b])), len(images), cfg.batch))
    metrics["tokenizer"] = {"reconstruction_agreement": agreement(classifier, recon, labels),
                            "classifier_on_originals": agreement(classifier, images, labels),
                            "mean_abs_pixel_error": (recon - images.float() / 255).abs().mean().item()}
    probs = torch.cat(in_batches(lambda a, b: model.classify(images[a:b]), len(images), cfg.batch))
    metrics["classification"] = {"accuracy": (probs.argmax(1) == labels).float().mean().item(), "images": len(images)}

    wanted = torch.arange(NUM_LABELS).repeat_interleave(cfg.per_label)
    conditioned = torch.cat(in_batches(lambda a, b: model.generate(
        b - a, labels=wanted[a:b], temperature=cfg.temperature, seed=cfg.seed + 1 + a, guidance=cfg.guidance)[0],
        len(wanted), cfg.batch))
    hits = classifier.predict_proba(conditioned).argmax(1) == wanted
    metrics["conditioned"] = {"agreement": hits.float().mean().item(), "per_label": cfg.per_label,
                              "agreement_by_label": [hits[wanted == y].float().mean().item()
                                                     for y in range(NUM_LABELS)]}

    joint_parts = in_batches(lambda a, b: model.generate(b - a, temperature=cfg.temperature, guidance=cfg.guidance,
                                                         seed=cfg.seed + 100_000 + a), n, cfg.batch)
    joint, joint_labels = torch.cat([p[0] for p in joint_parts]), torch.cat([p[1] for p in joint_parts])
    feats_ref, _ = classifier.embed(ref)
    feats_second, probs_second = classifier.embed(second)
    feats_joint, probs_joint = classifier.embed(joint)
    kid_joint, kid_second = (kernel_inception_distance(f, feats_ref, seed=cfg.seed) for f in (feats_joint,
                                                                                               feats_second))
    metrics["joint"] = {"frechet": frechet_distance(feats_joint, feats_ref), "kid": kid_joint[0],
                        "label_image_agreement": (probs_joint.argmax(1) == joint_labels).float().mean().item(),
                        **class_coverage(probs_joint)}
    metrics["real_floor"] = {"frechet": frechet_distance(feats_second, feats_ref), "kid": kid_second[0],
                             **class_coverage(probs_second)}

    metrics["variants"] = sampling_variants(model, classifier, cfg)
    count = min(cfg.n_complete, len(second))
    metrics["completion"] = completion_agreement(model, classifier, second[:count],
                                                 labels[n:n + count], cfg)
    metrics["completion"]["images"] = count
    metrics["targets"] = targets(metrics)
    metrics["figures"] = write_figures(model, cfg, second, labels[n:2 * n], joint, metrics)
    metrics["seconds"] = {"total": time.time() - start}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_report(metrics, out / "report.md")
    return metrics


def write_figures(model: DigitsModel, cfg: DigitsEvalConfig, real: torch.Tensor, labels: torch.Tensor,
                  joint: torch.Tensor, metrics: dict) -> list[dict]:
    out, written = Path(cfg.out), []

    def add(name: str, what: str, array) -> None:
        save_sheet(array.repeat(2, axis=0).repeat(2, axis=1), out, name)   # 28 px digits: shown twice as large
        written.append({"file": name, "what": what})

    add("fig11.png", "Fig. 11: 4 rows of joint samples p(x, y), then one row of p(x | y) per digit 0-9",
        figures.fig11(model, temperature=cfg.temperature, guidance=cfg.guidance, seed=cfg.seed))
    add("joint.png", "64 joint samples", tile(joint[:64], 8))
    columns = len(cfg.ratios) + 1
    for mode in MODES:
        add(f"completion-{mode}.png", f"completions of real test digits, {mode} S, r = 0.0 ... 0.9, then the digit",
            tile(figures.completion_sweep(model, real[:8], cfg.ratios, mode=mode, temperature=cfg.temperature,
                                          guidance=cfg.guidance, seed=cfg.seed), columns))
        add(f"completion-{mode}-labelled.png", "the same with the true label given: p(x_T | x_S, y)",
            tile(figures.completion_sweep(model, real[:8], cfg.ratios, labels=labels[:8], mode=mode,
                                          temperature=cfg.temperature, guidance=cfg.guidance, seed=cfg.seed),
                 columns))
    completion = metrics["completion"]
    series = {f"{key}, {mode} S": (cfg.ratios, completion[mode][key]) for mode in MODES
              for key in ("unlabelled", "labelled", "p_y_given_xs")}
    line_plot(series, out / "plot-agreement.png", title="agreement with the true label vs S-ratio",
              xlabel="S-ratio r (share of image tokens kept)", ylabel="agreement")
    written.append({"file": "plot-agreement.png", "what": "completion/label agreement and p(y | x_S) vs S-ratio"})
    return written


def write_report(metrics: dict, path: Path) -> None:
    info, tok, joint, floor = metrics["checkpoint_info"], metrics["tokenizer"], metrics["joint"], metrics["real_floor"]
    lines = [f"# Evaluation of `{metrics['checkpoint']}`", "",
             f"MNIST {metrics['split']} split ({metrics['data']}), device {metrics['device']}, "
             f"{metrics['seconds']['total']:.0f} s. Checkpoint: preset {info.get('preset', '?')}, "
             f"{info.get('kimg', '?')} kimg. Judge: `{metrics['classifier']['name']}` (test accuracy "
             f"{metrics['classifier']['test_accuracy']}).", "", "## Targets (issue 17)", ""]
    lines += markdown_table(["measure", "value", "target", "met"],
                            [[t["name"], t["value"], t["target"], "yes" if t["passed"] else "**no**"]
                             for t in metrics["targets"]])
    lines += ["", "## Tokenizer", "",
              f"Reconstructions keep their label for {tok['reconstruction_agreement']:.4f} of "
              f"{metrics['classification']['images']} digits (originals: {tok['classifier_on_originals']:.4f}); "
              f"mean absolute pixel error {tok['mean_abs_pixel_error']:.4f}.", "",
              "## Generation", ""]
    rows = [[name, r["frechet"], r["kid"], r["entropy"], r["mean_max_prob"]]
            for name, r in (("joint samples", joint), ("real (floor)", floor))]
    lines += markdown_table(["set vs real reference", "Fréchet distance", "KID", "class entropy (nats)",
                             "mean max-prob"], rows)
    lines += ["", f"Joint samples: the sampled label matches the classifier's reading of the sampled image for "
              f"{joint['label_image_agreement']:.4f}. Class histogram: "
              + ", ".join(f"{p:.3f}" for p in joint["histogram"]) + ".", "",
              "Label-conditioned agreement by digit: "
              + ", ".join(f"{y}: {a:.2f}" for y, a in enumerate(metrics["conditioned"]["agreement_by_label"])) + ".",
              "", f"Sampling variants ({metrics['config']['n_variants']} samples each; the targets above use a random "
              f"order at temperature {metrics['config']['temperature']:g}, guidance "
              f"{metrics['config']['guidance']:g}):", ""]
    lines += markdown_table(["order", "temperature", "guidance", "p(x | y) agreement", "joint: class entropy",
                             "joint: mean max-prob", "joint: sampled y = classifier's reading"],
                            [[v["order"], v["temperature"], v["guidance"], v["conditioned_agreement"],
                              v["joint_entropy"], v["joint_mean_max_prob"], v["joint_label_image_agreement"]]
                             for v in metrics["variants"]])
    lines += ["", f"## Completion ({metrics['completion']['images']} test digits per cell)", "",
              "Agreement of the classifier's reading of the completion with the true label; `p(y|x_S)` is the "
              "model's own classification from the kept tokens only.", ""]
    ratios = metrics["ratios"]
    lines += markdown_table(["r"] + [f"{r:.1f}" for r in ratios],
                            [[f"{key}, {mode} S"] + metrics["completion"][mode][key] for mode in MODES
                             for key in ("unlabelled", "labelled", "p_y_given_xs")])
    lines += ["", "## Figures", ""]
    for fig in metrics["figures"]:
        lines += [f"- {fig['what']}: `{fig['file']}`", "", f"  ![{fig['file']}]({fig['file']})", ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate a multi-modal MNIST checkpoint (metrics.json, report.md).")
    parser.add_argument("--checkpoint", default="digits-multimodal", help="a name under checkpoints/ or a folder")
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", default="", help="MNIST .npz or folder; default: the shared copy")
    parser.add_argument("--split", default="test", choices=["train", "test", "all"])
    parser.add_argument("--n", type=int, default=1000, help="joint samples and real reference digits")
    parser.add_argument("--per-label", type=int, default=100, dest="per_label")
    parser.add_argument("--n-complete", type=int, default=200, dest="n_complete")
    parser.add_argument("--n-variants", type=int, default=300, dest="n_variants")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--guidance", type=float, default=0.0,
                        help="classifier-free guidance weight (0 = none) of every sample but the variants table's")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--classifier", default="mnist-classifier")
    args = parser.parse_args(argv)
    return run_evaluation(evaluate, DigitsEvalConfig(**{**vars(args), "out": Path(args.out)}))


if __name__ == "__main__":
    sys.exit(main())
