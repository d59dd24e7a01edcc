"""Joint-sample measures taken at every training snapshot, so that a collapse shows while the run goes on.

- joint_spread: the per-pixel standard deviation across joint samples (S empty, one noise each), averaged over
  pixels, in [0, 1] units. Near 0 means the generator ignores z: every joint sample is the same image.
- joint_entropy, joint_confidence (MNIST, judged by the shipped `mnist-classifier`): the entropy in nats of the
  histogram of predicted digits (log 10 = 2.30 when all ten are equally common) and the classifier's mean top
  probability (how digit-like the samples are). The evaluator reports the same two on more samples.
- completion_spread: completions of held-out images at S-ratio 0.5 (random S), each completed with K noises; the
  per-pixel standard deviation across the noises, averaged over the generated pixels. Near 0: z is ignored there.
- completion_agreement (MNIST): the share of those completions (one noise) that the classifier reads as the true
  label of the image they were completed from.
- completion_roughness: the mean absolute difference between neighbouring pixels where a completion generated
  them, divided by the same for the real images there. 1 = as smooth as the real images; single-pixel speckle
  drives it above 1, blur below.

`python -m biglearn.metrics.snapshot CHECKPOINT [CHECKPOINT ...]` takes the same measures of exported checkpoints
(a name under checkpoints/ or a folder), one JSON line each.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from biglearn.checkpoint import CheckpointError
from biglearn.classifier import DigitClassifier, class_coverage, load_classifier
from biglearn.data import DataError, ImageSet, load_dataset
from biglearn.figures import to_float
from biglearn.metrics.diversity import complete_in_batches, joint_samples
from biglearn.patches import pixel_mask

SNAPSHOT_SEED = 20_251  # the same noises at every snapshot, so the numbers follow the model and not the draw
PROBE_RATIO = 0.5       # the S-ratio of the completion probe
PROBE_NOISES = 8        # completions per image for completion_spread
PROBE_SPREAD_IMAGES = 32


def load_judge(dataset: str, device: torch.device) -> DigitClassifier | None:
    """The digit classifier for MNIST runs; None for other data or when its checkpoint is missing (said once)."""
    if dataset != "mnist":
        return None
    try:
        return load_classifier("mnist-classifier", device)[0]  # leaves the random stream as it was
    except CheckpointError as exc:
        print(f"snapshot metrics: no digit classifier ({exc}); only joint_spread is measured", flush=True)
        return None


@torch.no_grad()
def snapshot_metrics(completer, count: int, judge: DigitClassifier | None = None,
                     probe: ImageSet | None = None) -> dict[str, float]:
    """Measures of `count` joint samples of `completer`, and of completions of the `probe` images when given
    (see the module docstring)."""
    joint = joint_samples(completer, count, SNAPSHOT_SEED, batch=min(count, 256))
    metrics = {"joint_spread": joint.std(dim=0).mean().item()}
    if judge is not None:
        coverage = class_coverage(judge.predict_proba(joint))
        metrics["joint_entropy"] = coverage["entropy"]
        metrics["joint_confidence"] = coverage["mean_max_prob"]
    if probe is not None:
        metrics.update(completion_metrics(completer, probe, judge))
    return metrics


@torch.no_grad()
def completion_metrics(completer, probe: ImageSet, judge: DigitClassifier | None) -> dict[str, float]:
    """completion_spread (and completion_agreement with a judge and labels) at S-ratio PROBE_RATIO."""
    images = probe.images
    mask = completer.random_mask(PROBE_RATIO, batch=len(images), seed=SNAPSHOT_SEED)
    metrics = {}
    if judge is not None and probe.labels is not None:
        out = complete_in_batches(completer, images, mask, completer.noise(len(images), SNAPSHOT_SEED + 1))
        read = judge.predict_proba(out).argmax(dim=1)
        metrics["completion_agreement"] = (read == probe.labels.cpu()).float().mean().item()
    few, k = min(len(images), PROBE_SPREAD_IMAGES), PROBE_NOISES
    repeated_mask = mask[:few].repeat_interleave(k, dim=0)
    out = complete_in_batches(completer, images[:few].repeat_interleave(k, dim=0), repeated_mask,
                              completer.noise(few * k, SNAPSHOT_SEED + 2))
    spread = out.reshape(few, k, *out.shape[1:]).std(dim=1)                   # [few, C, S, S]
    generated = (~pixel_mask(mask[:few], completer.cfg.patch_size)).expand_as(spread)
    metrics["completion_spread"] = (spread[generated].mean().item() if generated.any() else 0.0)
    if generated.any():
        where = generated[:, :1].repeat_interleave(k, dim=0)          # [few * k, 1, S, S], as `out`
        real = roughness(to_float(images[:few].repeat_interleave(k, dim=0)), where)
        metrics["completion_roughness"] = roughness(out.float(), where) / max(real, 1e-6)
    return metrics


def roughness(images: torch.Tensor, where: torch.Tensor) -> float:
    """Mean |difference| between horizontally and vertically adjacent pixels of images [N, C, S, S] in [0, 1],
    over the pairs with at least one pixel in `where` [N, 1, S, S]."""
    total, pairs, where = 0.0, 0, where.to(images.device)
    for dim in (-1, -2):
        length = images.shape[dim]
        step = images.narrow(dim, 1, length - 1) - images.narrow(dim, 0, length - 1)
        used = (where.narrow(dim, 1, length - 1) | where.narrow(dim, 0, length - 1)).expand_as(step)
        total += step.abs()[used].sum().item()
        pairs += int(used.sum())
    return total / max(pairs, 1)


def probe_images(dataset: str, path: str, size: int, count: int) -> ImageSet | None:
    """`count` held-out images (the test split, drawn with a fixed seed) for the completion probe; None where the
    split cannot be read (said once)."""
    try:
        data = load_dataset(dataset, path, size, "test")
    except DataError as exc:
        print(f"snapshot metrics: no test images for the completion probe ({exc})", flush=True)
        return None
    pick = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(SNAPSHOT_SEED))[:count]
    return ImageSet(data.images[pick], None if data.labels is None else data.labels[pick])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The training snapshot's measures of exported checkpoints.")
    parser.add_argument("checkpoints", nargs="+", help="names under checkpoints/ or export folders")
    parser.add_argument("--data", default="", help="MNIST .npz / CelebA folder for the completion probe (default: "
                        "the shared copy)")
    parser.add_argument("--count", type=int, default=256, help="joint samples and probe images")
    args = parser.parse_args(argv)
    from biglearn.evaluate import DEFAULT_DATA
    from biglearn.inference import Completer

    for name in args.checkpoints:
        completer = Completer.from_pretrained(name, device="cpu")
        dataset = completer.cfg.dataset
        probe = probe_images(dataset, str(args.data or DEFAULT_DATA[dataset]), completer.cfg.image_size, args.count)
        metrics = snapshot_metrics(completer, args.count, load_judge(dataset, torch.device("cpu")), probe)
        print(json.dumps({"checkpoint": str(name), **{k: round(v, 4) for k, v in metrics.items()}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
