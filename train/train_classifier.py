"""Train the MNIST digit classifier that `biglearn.evaluate` uses for features and labels.

    python train/train_classifier.py --data ../shared/data/mnist/mnist.npz --out checkpoints/mnist-classifier

Writes model.safetensors + config.json + a README.md card with the measured test accuracy. Training sees
random small affine jitter and, for half the batches, a resize round trip through a GAN resolution
(16/32/64 px), because generated digits reach the classifier that way; the card reports accuracy for both.
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from biglearn.classifier import INPUT_SIZE, DigitClassifier, accuracy, save_classifier, to_input  # noqa: E402
from biglearn.data import load_dataset  # noqa: E402
from biglearn.inference import resolve_device  # noqa: E402

ROUND_TRIP_SIZES = (16, 32, 64)  # the image sizes of the tiny, demo and paper MNIST presets
REQUIRED_ACCURACY = 0.99


def jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random rotation (±10°), scale (0.9-1.1) and shift (±2 px) per image: [B, 1, 28, 28] -> same."""
    b = x.shape[0]
    u = torch.rand(b, 4, generator=generator) * 2 - 1
    angle, scale = u[:, 0] * math.radians(10), 1 + 0.1 * u[:, 1]
    shift = u[:, 2:] * (2 * 2 / INPUT_SIZE)  # affine_grid coordinates span 2 over the image
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def round_trip(x: torch.Tensor, size: int) -> torch.Tensor:
    """28 px -> size -> 28 px, as a generated digit at that resolution reaches the classifier."""
    small = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return to_input(small)


def train(data: str, out: Path, *, epochs: int, batch: int, lr: float, seed: int, device: torch.device,
          limit: int = 0, command: str = "") -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_set = load_dataset("mnist", data, INPUT_SIZE, "train", limit=limit)
    test_set = load_dataset("mnist", data, INPUT_SIZE, "test", limit=limit)
    images, labels = train_set.images.float().div(255), train_set.labels
    model = DigitClassifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-len(images) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    start = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        loss_sum = 0.0
        for step in range(steps_per_epoch):
            index = order[step * batch:(step + 1) * batch]
            x = jitter(images[index], generator)
            if torch.rand(1, generator=generator).item() < 0.5:
                size = ROUND_TRIP_SIZES[torch.randint(len(ROUND_TRIP_SIZES), (1,), generator=generator).item()]
                x = round_trip(x, size)
            loss = F.cross_entropy(model(x.to(device)), labels[index].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item()
        acc = accuracy(model, test_set.images, test_set.labels)
        print(f"epoch {epoch + 1}/{epochs} | loss {loss_sum / steps_per_epoch:.4f} | test accuracy {acc:.4f} | "
              f"{time.time() - start:.0f} s", flush=True)
    results = {
        "test_accuracy": accuracy(model, test_set.images, test_set.labels),
        # The evaluator sees real digits resized to the GAN's size and back; report that path too.
        "test_accuracy_round_trip": {str(s): accuracy(model, round_trip(test_set.images.float() / 255, s),
                                                      test_set.labels) for s in ROUND_TRIP_SIZES},
        "train_images": len(images), "test_images": len(test_set), "epochs": epochs, "batch": batch, "lr": lr,
        "seed": seed, "wall_seconds": round(time.time() - start, 1), "device": str(device), "command": command,
    }
    save_classifier(model.cpu(), out, results)
    write_card(out / "README.md", results, data)
    return results


def write_card(path: Path, results: dict, data: str) -> None:
    trips = ", ".join(f"{s} px {a:.2%}" for s, a in results["test_accuracy_round_trip"].items())
    path.write_text(
        "# MNIST digit classifier (evaluation judge)\n\n"
        "LeNet-style CNN (conv5x32-pool-conv5x64-pool-fc128-fc10) used by `python -m biglearn.evaluate` for "
        "MNIST: its 128-d penultimate features give the Fréchet distance and KID, its predictions give the "
        "class histogram and completion/label agreement. Inputs of any size are resized to 28 px.\n\n"
        f"- Test accuracy (MNIST test split, {results['test_images']} images, 28 px): "
        f"**{results['test_accuracy']:.2%}** (required: >= {REQUIRED_ACCURACY:.0%})\n"
        f"- Test accuracy after a resize round trip through a GAN resolution: {trips}\n"
        f"- Trained on {results['train_images']} images of `{data}` (train split) for {results['epochs']} epochs, "
        f"batch {results['batch']}, Adam with a one-cycle lr (max {results['lr']:g}), seed {results['seed']}, "
        f"{results['wall_seconds']:.0f} s on {results['device']}.\n"
        "- Augmentation: rotation ±10°, scale ±10%, shift ±2 px; half the batches pass a 16/32/64 px round trip.\n\n"
        f"Command:\n\n```bash\n{results['command']}\n```\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the MNIST classifier used by biglearn.evaluate.")
    parser.add_argument("--data", default="../shared/data/mnist/mnist.npz", help="mnist.npz or torchvision folder")
    parser.add_argument("--out", default="checkpoints/mnist-classifier")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the dev machines are shared)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N train/test images (tests)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python train/train_classifier.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    results = train(args.data, Path(args.out), epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed,
                    device=resolve_device(args.device), limit=args.limit, command=command)
    print(f"test accuracy {results['test_accuracy']:.4f}; wrote {args.out}")
    if not args.limit and results["test_accuracy"] < REQUIRED_ACCURACY:
        print(f"error: test accuracy is below the required {REQUIRED_ACCURACY:.0%}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
