"""A LeNet-style MNIST digit classifier: the feature extractor and judge of the MNIST evaluation.

No Inception weights can be fetched here, so MNIST Fréchet distance / KID use this network's penultimate
features instead, and its predictions score class coverage and completion/label agreement. It always sees
28 px inputs: any image size is resized to 28 px first, so one set of weights serves every model resolution.

    classifier = load_classifier("mnist-classifier")       # a name under checkpoints/, or a folder path
    probs = classifier.predict_proba(images)                # images [B, 1, S, S] in [0, 1] or uint8, any S
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from biglearn.checkpoint import (CONFIG_FILE, WEIGHTS_FILE, CheckpointError, atomic_write, read_checkpoint_folder,
                                 untouched_rng)
from biglearn.inference import resolve_checkpoint, resolve_device

INPUT_SIZE = 28
NUM_CLASSES = 10
KIND = "mnist-digit-classifier"
FORMAT_VERSION = 1


def to_input(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """[B, C, S, S] uint8 or float in [0, 1] -> [B, 1, size, size] float; RGB is averaged to gray."""
    x = torch.as_tensor(images)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.ndim != 4:
        raise ValueError(f"expected images [B, C, H, W], got {tuple(x.shape)}")
    if x.shape[1] == 3:
        x = x.mean(dim=1, keepdim=True)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1)


class DigitClassifier(nn.Module):
    """conv5-pool-conv5-pool-fc-fc (LeNet-5 layout, wider channels) on 28x28 gray digits."""

    def __init__(self, *, channels: tuple[int, int] = (32, 64), hidden: int = 128, dropout: float = 0.5):
        super().__init__()
        c1, c2 = channels
        self.channels, self.hidden, self.dropout_p = (c1, c2), hidden, dropout
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),   # 28 -> 14
            nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),             # 14 -> 10 -> 5
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c2 * 5 * 5, hidden), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, NUM_CLASSES)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, 28, 28] -> [B, hidden] penultimate activations (the Fréchet/KID feature space)."""
        return self.fc(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """Any-size images -> (features [N, hidden], class probabilities [N, 10]) on the CPU, in eval mode."""
        was_training = self.training
        self.eval()
        feats, probs = [], []
        for start in range(0, len(images), batch):
            x = to_input(images[start:start + batch]).to(self.device)
            f = self.features(x)
            feats.append(f.cpu())
            probs.append(self.head(f).softmax(dim=1).cpu())
        self.train(was_training)
        if not feats:
            return torch.zeros(0, self.hidden), torch.zeros(0, NUM_CLASSES)
        return torch.cat(feats), torch.cat(probs)

    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(images)[1]

    def config(self) -> dict:
        return {"channels": list(self.channels), "hidden": self.hidden, "dropout": self.dropout_p}


def accuracy(classifier: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (classifier.predict_proba(images).argmax(dim=1) == labels.cpu()).float().mean().item()


def save_classifier(classifier: DigitClassifier, folder: str | Path, info: dict | None = None) -> None:
    """Weights as safetensors + config.json (architecture and provenance), each written atomically."""
    folder = Path(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in classifier.state_dict().items()}
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp))
    meta = {"format_version": FORMAT_VERSION, "kind": KIND, "input_size": INPUT_SIZE,
            "model": classifier.config(), **(info or {})}
    atomic_write(folder / CONFIG_FILE, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))


def load_classifier(name_or_path: str | Path, device: str | torch.device | None = "auto"
                    ) -> tuple[DigitClassifier, dict]:
    """(classifier in eval mode, its config.json) from a name under checkpoints/ or a folder path."""
    folder = resolve_checkpoint(name_or_path)
    meta, weights_path = read_checkpoint_folder(folder, "classifier checkpoint")
    config_path = folder / CONFIG_FILE
    if meta.get("kind") != KIND:
        raise CheckpointError(f"{config_path} describes a {meta.get('kind', 'GAN')!r}, not a {KIND}")
    model = meta["model"]
    with untouched_rng():
        classifier = DigitClassifier(channels=tuple(model["channels"]), hidden=model["hidden"],
                                     dropout=model["dropout"])
    try:
        classifier.load_state_dict(load_file(weights_path))
    except Exception as exc:
        raise CheckpointError(f"cannot load {weights_path}: {exc}") from exc
    device = resolve_device(device) if device is None or isinstance(device, str) else device
    return classifier.to(device).eval(), meta


def class_coverage(probs: torch.Tensor) -> dict:
    """Mode coverage of a sample set from its class probabilities [N, 10].

    histogram: share of samples per predicted class; entropy: of that histogram in nats (log 10 = 2.303 when
    every digit is equally common); mean_max_prob: how confident the classifier is, i.e. how digit-like they are.
    """
    histogram = torch.bincount(probs.argmax(dim=1), minlength=NUM_CLASSES).double() / max(len(probs), 1)
    nonzero = histogram[histogram > 0]
    return {"histogram": histogram.tolist(), "entropy": (nonzero * nonzero.reciprocal().log()).sum().item(),
            "mean_max_prob": probs.max(dim=1).values.mean().item()}
