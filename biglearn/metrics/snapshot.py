"""Joint-sample measures taken at every training snapshot, so that a collapse shows while the run goes on.

- joint_spread: the per-pixel standard deviation across joint samples (S empty, one noise each), averaged over
  pixels, in [0, 1] units. Near 0 means the generator ignores z: every joint sample is the same image.
- joint_entropy, joint_confidence (MNIST, judged by the shipped `mnist-classifier`): the entropy in nats of the
  histogram of predicted digits (log 10 = 2.30 when all ten are equally common) and the classifier's mean top
  probability (how digit-like the samples are). The evaluator reports the same two on more samples.
"""
from __future__ import annotations

import torch

from biglearn.checkpoint import CheckpointError
from biglearn.classifier import DigitClassifier, class_coverage, load_classifier
from biglearn.metrics.diversity import joint_samples

SNAPSHOT_SEED = 20_251  # the same noises at every snapshot, so the numbers follow the model and not the draw


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
def snapshot_metrics(completer, count: int, judge: DigitClassifier | None = None) -> dict[str, float]:
    """Measures of `count` joint samples of `completer` (see the module docstring)."""
    joint = joint_samples(completer, count, SNAPSHOT_SEED, batch=min(count, 256))
    metrics = {"joint_spread": joint.std(dim=0).mean().item()}
    if judge is not None:
        coverage = class_coverage(judge.predict_proba(joint))
        metrics["joint_entropy"] = coverage["entropy"]
        metrics["joint_confidence"] = coverage["mean_max_prob"]
    return metrics
