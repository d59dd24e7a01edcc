"""Speed of the multi-modal MNIST model: `python -m biglearn.multimodal.bench [--checkpoint NAME] [--threads N]`.

Inference latency (median of --reps) of each capability the app calls, on the checkpoint's weights, through the
library and through the app's handlers, and the training throughput of its transformer (one Eq. (19) step on random
tokens, batch of the preset). --shape times an untrained transformer of another shape instead.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import numpy as np
import torch

from biglearn.multimodal.config import preset
from biglearn.multimodal.model import DigitsModel
from biglearn.multimodal.objective import sample_pairs
from biglearn.multimodal.trainer import eq19_loss
from biglearn.multimodal.transformer import AnyOrderTransformer


def median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def inference(model: DigitsModel, reps: int) -> dict[str, float]:
    digits = (torch.rand(100, 1, 28, 28) * 255).to(torch.uint8)
    keep = model.random_mask(0.5, seed=0)
    return {
        "classify 1 ms": median_ms(lambda: model.classify(digits[:1]), reps),
        "classify 100 ms": median_ms(lambda: model.classify(digits), reps),
        "generate 1 ms": median_ms(lambda: model.generate(1, seed=0), reps),
        "generate 16 ms": median_ms(lambda: model.generate(16, seed=0), reps),
        "generate 16 with label ms": median_ms(lambda: model.generate(16, labels=3, seed=0), reps),
        "generate 1 with label, guidance 1 ms": median_ms(lambda: model.generate(1, labels=3, seed=0, guidance=1.0),
                                                          reps),
        "generate 16 with label, guidance 1 ms": median_ms(
            lambda: model.generate(16, labels=3, seed=0, guidance=1.0), reps),
        "complete 1 at r=0.5 ms": median_ms(lambda: model.complete(digits[:1], keep, seed=0), reps),
    }


def app_handlers(model: DigitsModel, reps: int) -> dict[str, float]:
    """The same capabilities through the app's handlers (biglearn.app.digits, what the tab and the API call),
    which add the image conversions and the gallery's rendering to the model's work, at the app's default
    sampling settings."""
    from biglearn.app.digits import MODEL, DigitsCapabilities, Sampling
    from biglearn.app.models import ModelCache

    # The cache finds the shipped folder as the app does, and the loader hands it this model instead.
    handlers = DigitsCapabilities(ModelCache(str(model.device), {MODEL: "digits-multimodal"}, lambda *_, **__: model))
    drawn = np.zeros((28, 28, 1), dtype=np.uint8)
    drawn[6:22, 12:16] = 255
    return {
        "app classify 1 ms": median_ms(lambda: handlers.classify(drawn), reps),
        "app generate 1 ms": median_ms(lambda: handlers.generate(None, 1, 0, Sampling()), reps),
        "app generate 16 ms": median_ms(lambda: handlers.generate(None, 16, 0, Sampling()), reps),
        "app generate 1 with label ms": median_ms(lambda: handlers.generate(3, 1, 0, Sampling()), reps),
    }


def parse_shape(text: str) -> tuple[int, int, int]:
    """'192x4x6' -> (dim, depth, heads)."""
    try:
        dim, depth, heads = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is DIMxDEPTHxHEADS, e.g. 192x4x6, not {text!r}") from None
    return dim, depth, heads


def with_shape(model: DigitsModel, shape: tuple[int, int, int]) -> DigitsModel:
    """The checkpoint's tokenizer with an untrained transformer of another shape: sampling costs the same whatever
    the weights, so a shape can be timed before it is trained."""
    dim, depth, heads = shape
    cfg = dataclasses.replace(model.cfg, dim=dim, depth=depth, heads=heads)
    return DigitsModel(model.tokenizer, AnyOrderTransformer(cfg), model.device)


def training(preset_name: str, steps: int, shape: tuple[int, int, int] | None = None) -> dict[str, float]:
    cfg = preset(preset_name)
    if shape:
        cfg.model.dim, cfg.model.depth, cfg.model.heads = shape
    model = AnyOrderTransformer(cfg.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    tokens = torch.randint(cfg.model.codebook_size, (cfg.batch, cfg.model.length))
    tokens[:, 0] = cfg.model.codebook_size + torch.randint(10, (cfg.batch,))

    def step():
        order, num_source = sample_pairs(cfg.batch, cfg)
        loss, _ = eq19_loss(model, tokens, order, num_source, cfg.label_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    ms = median_ms(step, steps)
    return {"train step ms": ms, "train img/s": cfg.batch / ms * 1000, "batch": cfg.batch,
            "transformer params M": sum(p.numel() for p in model.parameters()) / 1e6}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Latency and training throughput of the multi-modal MNIST model.")
    parser.add_argument("--checkpoint", default="digits-multimodal")
    parser.add_argument("--preset", default="demo", help="preset whose transformer step is timed")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", type=parse_shape, help="DIMxDEPTHxHEADS: time an untrained transformer of this "
                        "shape (with the checkpoint's tokenizer) instead of the checkpoint's own")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = DigitsModel.from_pretrained(args.checkpoint, device=args.device)
    if args.shape:
        model = with_shape(model, args.shape)
    results = {"device": args.device, "threads": torch.get_num_threads(),
               "shape": f"{model.cfg.dim}x{model.cfg.depth}x{model.cfg.heads}", **inference(model, args.reps),
               **app_handlers(model, args.reps),
               **training(args.preset, max(3, args.reps // 2), args.shape)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
