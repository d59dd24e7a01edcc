"""Datasets as in-memory uint8 tensors [N, C, S, S], read only from local files.

MNIST: an `.npz` with x_train/y_train/x_test/y_test, or torchvision's `MNIST/raw` IDX layout.
Faces (CelebA): a folder of images (searched recursively; covers torchvision's `celeba/img_align_celeba`), `.tar`
shards of JPEGs, or a single image file; any mix of resolutions. Each image is centre-cropped to the face square
and resized. Folder and tar sets are split train/test by a hash of the file name, so the split does not depend
on the layout or on which shards are present.

`python -m biglearn.data pack ...` writes a small preprocessed copy that travels with the repository.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import shutil
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
TEST_EVERY = 20  # 1 file name in 20 (by hash) is held out as the test split of folder/tar sets
SPLITS = ("train", "test", "all")


@dataclass
class ImageSet:
    images: torch.Tensor               # [N, C, S, S] uint8
    labels: torch.Tensor | None = None  # [N] int64 (MNIST)

    def __len__(self) -> int:
        return self.images.shape[0]


class DataError(ValueError):
    """A dataset path that cannot be read as asked; the message says why and what is accepted."""


def resize_batch(images: np.ndarray, size: int) -> torch.Tensor:
    """[N, C, H, W] uint8 -> [N, C, size, size] uint8 with antialiased bilinear resampling."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------- MNIST
def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        for candidate in (root / name, root / "raw" / name, root / "MNIST" / "raw" / name):
            if candidate.exists():
                return candidate
    raise DataError(f"no {stem}[.gz] under {root} (expected torchvision's MNIST/raw layout or an .npz)")


def load_mnist(path: str | Path, size: int, split: str = "train", download: bool = False) -> ImageSet:
    path = Path(path)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    if not path.exists():
        if download:
            from torchvision.datasets import MNIST  # only with an explicit --download
            MNIST(str(path), train=True, download=True)
            MNIST(str(path), train=False, download=True)
        else:
            raise DataError(f"MNIST data not found at {path}; pass an mnist.npz, a torchvision MNIST folder, "
                            "or --download to fetch it")
    parts = ("train", "test") if split == "all" else (split,)
    images, labels = [], []
    for part in parts:
        if path.is_file():
            with np.load(path) as arrays:
                images.append(arrays[f"x_{part}"])
                labels.append(arrays[f"y_{part}"])
        else:
            prefix = "train" if part == "train" else "t10k"
            images.append(_read_idx(_find_idx(path, f"{prefix}-images-idx3-ubyte")))
            labels.append(_read_idx(_find_idx(path, f"{prefix}-labels-idx1-ubyte")))
    x = np.concatenate(images)[:, None]
    return ImageSet(resize_batch(x, size), torch.from_numpy(np.concatenate(labels).astype(np.int64)))


# ---------------------------------------------------------------- faces
def face_crop(image: Image.Image) -> Image.Image:
    """Centre square around the face of an aligned CelebA image (140 px of 178x218), scaled to any resolution."""
    w, h = image.size
    side = min(round(w * 140 / 178), h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def decode_image(data: bytes, size: int, channels: int, crop=face_crop) -> np.ndarray:
    """JPEG/PNG bytes -> [C, size, size] uint8. Raises on corrupt data."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        image = image.convert("RGB" if channels == 3 else "L")
        image = crop(image).resize((size, size), Image.Resampling.LANCZOS)
        array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def in_split(name: str, split: str) -> bool:
    if split == "all":
        return True
    is_test = int(hashlib.sha1(Path(name).name.encode()).hexdigest(), 16) % TEST_EVERY == 0
    return is_test == (split == "test")


def iter_image_bytes(path: Path):
    """Yield (name, bytes) for every image in a file, a tar, or a folder of images and tars."""
    if path.is_file():
        if path.suffix == ".tar":
            with tarfile.open(path) as tar:
                for member in tar:
                    if member.isfile() and member.name.lower().endswith(IMAGE_SUFFIXES):
                        yield member.name, tar.extractfile(member).read()
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            yield path.name, path.read_bytes()
        return
    for child in sorted(path.rglob("*")):
        if child.is_file() and (child.suffix == ".tar" or child.suffix.lower() in IMAGE_SUFFIXES):
            yield from iter_image_bytes(child)


def load_faces(path: str | Path, size: int, split: str = "train", channels: int = 3,
               limit: int = 0) -> ImageSet:
    path = Path(path)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    if not path.exists():
        raise DataError(f"image data not found at {path}; pass a folder of images, .tar shards of JPEGs, "
                        "or torchvision's celeba/img_align_celeba folder")
    arrays, skipped = [], []
    for name, data in iter_image_bytes(path):
        if not in_split(name, split):
            continue
        try:
            arrays.append(decode_image(data, size, channels))
        except Exception:  # a corrupt or unsupported file is skipped, counted and reported once
            skipped.append(name)
        if limit and len(arrays) >= limit:
            break
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) under {path}, e.g. {skipped[0]}", stacklevel=2)
    if not arrays:
        raise DataError(f"no readable images for split {split!r} under {path}")
    return ImageSet(torch.from_numpy(np.stack(arrays)))


def load_dataset(dataset: str, path: str | Path, size: int, split: str = "train", *, limit: int = 0,
                 download: bool = False) -> ImageSet:
    """The one entry point the trainers and the evaluator use."""
    if dataset == "mnist":
        data = load_mnist(path, size, split, download=download)
        if limit:
            data = ImageSet(data.images[:limit], data.labels[:limit])
        return data
    if download:
        raise DataError("CelebA cannot be downloaded automatically here; pass a local folder or .tar shards")
    return load_faces(path, size, split, channels=3, limit=limit)


# ---------------------------------------------------------------- packing a small copy for remote machines
def pack_faces(src: Path, dst: Path, size: int, quality: int = 85) -> int:
    """Re-encode every readable face at `size` px into one tar, keeping file names (and so the split)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    tmp = dst.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for name, data in iter_image_bytes(src):
            try:
                array = decode_image(data, size, 3)
            except Exception:
                continue
            buffer = io.BytesIO()
            Image.fromarray(array.transpose(1, 2, 0)).save(buffer, format="JPEG", quality=quality)
            info = tarfile.TarInfo(Path(name).name)
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)
            count += 1
    tmp.replace(dst)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description="Pack a preprocessed copy of a dataset (small enough to travel).")
    sub = parser.add_subparsers(dest="command", required=True)
    pack = sub.add_parser("pack")
    pack.add_argument("--dataset", choices=["mnist", "celeba"], required=True)
    pack.add_argument("--data", required=True)
    pack.add_argument("--size", type=int, default=64, help="face resolution to store (faces only)")
    pack.add_argument("--out", required=True)
    args = parser.parse_args()
    src, dst = Path(args.data), Path(args.out)
    if args.dataset == "mnist":
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        print(f"copied {src} -> {dst} ({dst.stat().st_size / 2**20:.1f} MiB)")
    else:
        count = pack_faces(src, dst, args.size)
        print(f"packed {count} faces at {args.size}px -> {dst} ({dst.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
