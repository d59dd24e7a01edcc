"""Write the app's built-in example inputs into examples/.

    python scripts/make_examples.py                 # all: digits, faces, drawn pictures
    python scripts/make_examples.py --only faces    # after the faces checkpoint changes

digits/: the first MNIST *test* image of each class (CC BY-SA 3.0, attribution in digits/ATTRIBUTION.md).
faces/:  faces the shipped faces model generated itself (joint samples, S empty) -- never CelebA images.
drawn/:  out-of-domain pictures drawn by this script (shapes and gradients), in odd sizes and modes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from biglearn.app import ops  # noqa: E402
from biglearn.app.models import ModelCache, find_checkpoint  # noqa: E402

MNIST_ATTRIBUTION = """# MNIST test digits

`mnist-test-<index>-label<digit>.png` are images from the MNIST test set (the first test image of each class;
`<index>` is the official test index), 28x28, white ink on black, unchanged.

MNIST: Yann LeCun, Corinna Cortes and Christopher J. C. Burges, "The MNIST database of handwritten digits",
http://yann.lecun.com/exdb/mnist/ -- a derivative of NIST Special Databases 1 and 3. Distributed here under the
Creative Commons Attribution-Share Alike 3.0 licence (CC BY-SA 3.0), as MNIST commonly is.
Written by `python scripts/make_examples.py --only digits` from {source}.
"""


def make_digits(mnist: Path, out: Path) -> None:
    with np.load(mnist) as arrays:
        images, labels = arrays["x_test"], arrays["y_test"]
        index = arrays["test_index"] if "test_index" in arrays else np.arange(len(images))
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("mnist-test-*.png"):
        old.unlink()
    for digit in range(10):
        row = int(np.flatnonzero(labels == digit)[0])
        Image.fromarray(images[row]).save(out / f"mnist-test-{int(index[row]):04d}-label{digit}.png")
    (out / "ATTRIBUTION.md").write_text(MNIST_ATTRIBUTION.format(source=mnist.name))
    print(f"wrote 10 MNIST test digits to {out}")


def make_faces(out: Path, count: int, first_seed: int) -> None:
    folder = find_checkpoint("faces")
    completer = ModelCache().get("faces")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("generated-*.png"):
        old.unlink()
    seeds = list(range(first_seed, first_seed + count))
    for seed in seeds:
        image = ops.joint_sample(completer, seed)
        Image.fromarray(image if image.shape[-1] == 3 else image[..., 0]).save(out / f"generated-seed{seed:04d}.png")
    meta = json.loads((folder / "config.json").read_text())
    provenance = {k: meta[k] for k in ("kimg", "images_seen", "step", "git", "preset") if k in meta}
    (out / "SOURCE.md").write_text(
        "# Generated faces\n\nEvery face here was made up by the faces model (a joint sample, S empty, from "
        "`ops.joint_sample(completer, seed)`); none is a photo or a CelebA image.\n\n"
        f"- checkpoint: `{folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder.name}` "
        f"({completer.cfg.image_size}px) {json.dumps(provenance)}\n- seeds: {seeds}\n"
        "- regenerate: `python scripts/make_examples.py --only faces`\n")
    print(f"wrote {count} generated faces to {out} (checkpoint {folder})")


def make_drawn(out: Path) -> None:
    """Out-of-domain inputs: a landscape 'painting' (RGB, 3:2) and a palette-mode poster with transparency."""
    out.mkdir(parents=True, exist_ok=True)
    w, h = 300, 200
    y = np.linspace(0, 1, h)[:, None, None]
    sky = (1 - y) * np.array([255, 140, 60]) + y * np.array([60, 40, 120])
    painting = Image.fromarray(np.broadcast_to(sky, (h, w, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(painting)
    draw.ellipse((110, 50, 190, 130), fill=(255, 230, 120))
    draw.polygon([(0, 200), (90, 110), (170, 200)], fill=(30, 60, 40))
    draw.polygon([(120, 200), (230, 90), (300, 160), (300, 200)], fill=(20, 45, 35))
    painting.save(out / "drawn-sunset-300x200.png")
    poster = Image.new("P", (160, 240), 0)  # palette index 0 is transparent
    poster.putpalette([0, 0, 0, 230, 50, 50, 40, 160, 220, 250, 200, 40, 60, 180, 90, 250, 250, 250])
    draw = ImageDraw.Draw(poster)
    for k in range(4):
        draw.rectangle((10 + 12 * k, 10 + 40 * k, 150 - 12 * k, 60 + 40 * k), fill=k + 1)
    draw.ellipse((40, 150, 120, 230), fill=5)
    poster.save(out / "drawn-poster-160x240.png", transparency=0)
    print(f"wrote 2 drawn pictures to {out}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["digits", "faces", "drawn"], action="append")
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared/data/mnist/mnist.npz")
    parser.add_argument("--faces", type=int, default=8, help="how many faces to generate")
    parser.add_argument("--seed", type=int, default=0, help="first seed of the generated faces")
    parser.add_argument("--out", type=Path, default=ROOT / "examples")
    args = parser.parse_args(argv)
    parts = args.only or ["digits", "faces", "drawn"]
    if "digits" in parts:
        make_digits(args.mnist, args.out / "digits")
    if "drawn" in parts:
        make_drawn(args.out / "drawn")
    if "faces" in parts:
        make_faces(args.out / "faces", args.faces, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
