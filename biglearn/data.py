"""Datasets as in-memory uint8 tensors [N, C, S, S], read only from local files.

MNIST: an `.npz` with x_train/y_train/x_test/y_test, or torchvision's `MNIST/raw` IDX layout.
Faces (CelebA): a folder of images (searched recursively; covers torchvision's `celeba/img_align_celeba`), `.tar`
shards of JPEGs, or a single image file; any mix of resolutions. Each image is centre-cropped to the face square
and resized; a square image is taken to be a face square already (an aligned CelebA image never is square, a
packed one always is) and is only resized. Folder and tar sets are split train/test by a hash of the file name,
so the split does not depend on the layout or on which shards are present.

`python -m biglearn.data pack ...` writes a small preprocessed copy that travels with the repository. It checks
its source first and writes through a temporary file, so a failed pack never replaces an existing one.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import shutil
import sys
import tarfile
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from biglearn.checkpoint import atomic_write

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
TEST_EVERY = 20  # 1 file name in 20 (by hash) is held out as the test split of folder/tar sets
SPLITS = ("train", "test", "all")
MNIST_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


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


def read_mnist_npz(path: Path, names: Sequence[str] = MNIST_ARRAYS) -> list[np.ndarray]:
    """The named arrays of an MNIST `.npz`; a DataError naming the file and the arrays expected otherwise."""
    expected = f"expected an MNIST .npz with arrays {', '.join(MNIST_ARRAYS)}"
    try:
        arrays = np.load(path, allow_pickle=False)
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise DataError(f"{path} holds a single array; {expected}")
        with arrays:
            missing = [name for name in MNIST_ARRAYS if name not in arrays.files]
            if missing:
                raise DataError(f"{path} has no {', '.join(missing)}; {expected}")
            return [arrays[name] for name in names]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # not numpy's message: for a file that is no .npz at all it advises allow_pickle=True, which is wrong here
        raise DataError(f"{path} is not a readable .npz; {expected}") from exc


def _outermost_missing(path: Path) -> Path:
    """The highest folder of `path` that does not exist yet, i.e. everything that creating `path` adds."""
    while not path.parent.exists():
        path = path.parent
    return path


def download_mnist(path: Path) -> None:
    """Fetch MNIST with torchvision into the new folder `path`; a failed try leaves nothing, so a retry starts clean."""
    from torchvision.datasets import MNIST  # only with an explicit --download
    created = _outermost_missing(path)
    try:
        for train in (True, False):
            MNIST(str(path), train=train, download=True)
    except Exception as exc:  # no network, a mirror down, a bad checksum: all leave a partial folder
        shutil.rmtree(created, ignore_errors=True)
        raise DataError(f"download failed: {exc}") from exc


def load_mnist(path: str | Path, size: int, split: str = "train", download: bool = False) -> ImageSet:
    path = Path(path)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    if not path.exists():
        if download:
            download_mnist(path)
        else:
            raise DataError(f"MNIST data not found at {path}; pass an mnist.npz, a torchvision MNIST folder, "
                            "or --download to fetch it")
    parts = ("train", "test") if split == "all" else (split,)
    images, labels = [], []
    for part in parts:
        if path.is_file():
            x, y = read_mnist_npz(path, (f"x_{part}", f"y_{part}"))
            images.append(x)
            labels.append(y)
        else:
            prefix = "train" if part == "train" else "t10k"
            images.append(_read_idx(_find_idx(path, f"{prefix}-images-idx3-ubyte")))
            labels.append(_read_idx(_find_idx(path, f"{prefix}-labels-idx1-ubyte")))
    x = np.concatenate(images)[:, None]
    return ImageSet(resize_batch(x, size), torch.from_numpy(np.concatenate(labels).astype(np.int64)))


# ---------------------------------------------------------------- faces
def face_square_side(width: int, height: int) -> int:
    """Side of the centred face square of an aligned CelebA image (140 px of 178x218), at any resolution.

    A square image is a face square already (e.g. from `pack_faces`; an aligned CelebA image is never square):
    cropping it again would zoom in by 178/140.
    """
    return width if width == height else min(round(width * 140 / 178), height)


def face_crop(image: Image.Image) -> Image.Image:
    """The centred face square (`face_square_side`) of an image."""
    w, h = image.size
    side = face_square_side(w, h)
    if side == w == h:
        return image
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
            yield from _iter_tar(path)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            yield path.name, path.read_bytes()
        return
    for child in sorted(path.rglob("*")):
        if child.is_file() and (child.suffix == ".tar" or child.suffix.lower() in IMAGE_SUFFIXES):
            yield from iter_image_bytes(child)


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (name, bytes) for every image in one tar shard."""
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile() and member.name.lower().endswith(IMAGE_SUFFIXES):
                    yield member.name, tar.extractfile(member).read()
    except tarfile.TarError as exc:  # unlike one bad image, a bad shard is not skipped: it hides many images
        raise DataError(f"{path} is not a readable .tar (corrupt or truncated); copy it again or remove it") from exc


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
def _check_output(dst: Path) -> None:
    if dst.is_dir():
        raise DataError(f"--out {dst} is a folder; name the file to write")


def pack_mnist(src: Path, dst: Path) -> None:
    """Copy an MNIST `.npz` once it has been read as one."""
    if not src.exists():
        raise DataError(f"MNIST data not found at {src}; pack --dataset mnist copies an mnist.npz file")
    read_mnist_npz(src)
    _check_output(dst)
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def pack_faces(src: Path, dst: Path, size: int, quality: int = 85) -> int:
    """Re-encode every readable face at `size` px into one tar, keeping file names (and so the split).

    The faces are stored cropped (square), so loading the pack crops nothing more; see `face_crop`.
    """
    if not src.exists():
        raise DataError(f"image data not found at {src}; pass a folder of images or .tar shards of JPEGs")
    _check_output(dst)
    count = 0

    def write(tmp: str) -> None:  # a failure leaves dst as it was (atomic_write)
        nonlocal count
        with tarfile.open(tmp, mode="w") as tar:
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
        if not count:
            raise DataError(f"no readable images under {src}; nothing packed, {dst} left as it was")

    atomic_write(dst, write)
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pack a preprocessed copy of a dataset (small enough to travel).")
    sub = parser.add_subparsers(dest="command", required=True)
    pack = sub.add_parser("pack")
    pack.add_argument("--dataset", choices=["mnist", "celeba"], required=True)
    pack.add_argument("--data", required=True)
    pack.add_argument("--size", type=int, default=64, help="face resolution to store (faces only)")
    pack.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.size < 1:
        parser.error("--size must be at least 1")
    src, dst = Path(args.data), Path(args.out)
    try:
        if args.dataset == "mnist":
            pack_mnist(src, dst)
            print(f"copied {src} -> {dst} ({dst.stat().st_size / 2**20:.1f} MiB)")
        else:
            count = pack_faces(src, dst, args.size)
            print(f"packed {count} faces at {args.size}px -> {dst} ({dst.stat().st_size / 2**20:.1f} MiB)")
    except (DataError, OSError) as exc:  # the user's paths, not a bug: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
