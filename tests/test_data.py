import io
import itertools
import os
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from biglearn.data import MNIST_ARRAYS, DataError, in_split, load_dataset, load_faces, load_mnist, main


def jpeg(size, color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def celeba_sample(celeba_dir: Path, path: Path, count: int = 6) -> Path:
    """A tar of the first full-size faces of a shared shard; only ever written under tmp_path (licensing)."""
    with tarfile.open(celeba_dir / "celeba_178x218_shard00.tar") as shard:
        members = itertools.islice((m for m in shard if m.isfile()), count)
        return write_tar(path, {m.name: shard.extractfile(m).read() for m in members})


def pack(dataset: str, data: Path, out: Path, *more: str) -> int:
    return main(["pack", "--dataset", dataset, "--data", str(data), "--out", str(out), *more])


def assert_one_error_line(capsys, *words: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert all(word in err for word in words), err


def test_faces_of_mixed_resolutions_and_a_corrupt_file(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg((89, 109), (200, 10, 10)))
    (tmp_path / "b.jpg").write_bytes(jpeg((178, 218), (10, 200, 10)))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        data = load_faces(tmp_path, 32, split="all")
    assert data.images.shape == (2, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.images[0, 0].float().mean() > 150  # red stays red after crop + resize


def test_missing_paths_raise_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset("celeba", tmp_path / "missing", 32)
    with pytest.raises(DataError, match="--download"):
        load_mnist(tmp_path / "missing.npz", 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no readable images"):
        load_faces(tmp_path / "empty", 32)


def test_split_is_a_stable_partition():
    names = [f"{i:06d}.jpg" for i in range(2000)]
    test = [n for n in names if in_split(n, "test")]
    assert 60 < len(test) < 140
    assert not any(in_split(n, "train") for n in test)


def test_mnist_npz_and_torchvision_layout_agree(tmp_path, mnist_npz):
    npz = load_mnist(mnist_npz, 32, split="test")
    assert npz.images.shape == (8000, 1, 32, 32) and npz.labels.shape == (8000,)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    with np.load(mnist_npz) as arrays:
        x, y = arrays["x_test"][:50], arrays["y_test"][:50]
    (raw / "t10k-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x03" + b"".join(int(d).to_bytes(4, "big") for d in x.shape) + x.tobytes())
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (50).to_bytes(4, "big") + y.tobytes())
    folder = load_mnist(tmp_path, 32, split="test")
    assert torch.equal(folder.images, npz.images[:50]) and torch.equal(folder.labels, npz.labels[:50])


def test_shared_celeba_shards_load(celeba_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shared data hold no unreadable file
        data = load_dataset("celeba", celeba_dir, 64, "test", limit=20)
    assert data.images.shape == (20, 3, 64, 64)


def test_a_packed_face_is_not_cropped_again(tmp_path, celeba_dir, capsys):
    faces = celeba_sample(celeba_dir, tmp_path / "faces.tar")
    packed = tmp_path / "celeba64.tar"
    assert pack("celeba", faces, packed, "--size", "64") == 0
    assert "packed 6 faces at 64px" in capsys.readouterr().out
    original, reloaded = load_faces(faces, 64, "all"), load_faces(packed, 64, "all")
    assert reloaded.images.shape == original.images.shape == (6, 3, 64, 64)
    # JPEG loss only (a few grey levels); cropping the packed square again zoomed it by 28% (~40 levels)
    assert (reloaded.images.float() - original.images.float()).abs().mean() < 4


def test_a_failed_pack_keeps_the_old_pack_and_leaves_no_temp_file(tmp_path, capsys):
    out = tmp_path / "packs" / "celeba64.tar"
    out.parent.mkdir()
    out.write_bytes(b"a good pack")
    (tmp_path / "notes.txt").write_text("no faces here")
    (tmp_path / "broken.tar").write_bytes(b"not a tar" * 100)
    for data, reason in [("missing", "not found"), ("notes.txt", "no readable images"), ("broken.tar", "broken.tar")]:
        assert pack("celeba", tmp_path / data, out) == 2
        assert_one_error_line(capsys, reason)
        assert out.read_bytes() == b"a good pack" and os.listdir(out.parent) == ["celeba64.tar"]


def test_pack_into_an_existing_folder_is_refused(tmp_path, capsys):
    write_tar(tmp_path / "faces.tar", {"a.jpg": jpeg((89, 109), (200, 10, 10))})
    (tmp_path / "packs").mkdir()
    assert pack("celeba", tmp_path / "faces.tar", tmp_path / "packs") == 2
    assert_one_error_line(capsys, "is a folder")
    assert sorted(os.listdir(tmp_path)) == ["faces.tar", "packs"] and not os.listdir(tmp_path / "packs")


def test_pack_mnist_copies_only_an_mnist_npz(tmp_path, capsys):
    npz = tmp_path / "tiny.npz"
    np.savez(npz, **{name: np.zeros((2, 28, 28) if name[0] == "x" else 2, np.uint8) for name in MNIST_ARRAYS})
    (tmp_path / "notes.txt").write_text("not MNIST")
    out = tmp_path / "packs" / "mnist.npz"
    for data, reason in [("missing.npz", "not found"), ("notes.txt", "notes.txt")]:
        assert pack("mnist", tmp_path / data, out) == 2
        assert_one_error_line(capsys, reason)
        assert not out.exists()
    assert pack("mnist", npz, out) == 0
    assert out.read_bytes() == npz.read_bytes() and os.listdir(out.parent) == ["mnist.npz"]


def test_a_file_that_is_not_mnist_is_a_clear_error(tmp_path):
    write_tar(tmp_path / "faces.tar", {"a.jpg": jpeg((89, 109), (200, 10, 10))})
    (tmp_path / "notes.txt").write_text("not MNIST")
    np.savez(tmp_path / "other.npz", images=np.zeros((2, 28, 28), np.uint8))
    np.save(tmp_path / "bare.npy", np.zeros((2, 28, 28), np.uint8))
    for name in ("faces.tar", "notes.txt", "other.npz", "bare.npy"):
        with pytest.raises(DataError, match=rf"{name}.*expected an MNIST \.npz with arrays x_train"):
            load_mnist(tmp_path / name, 28)


def test_a_failed_download_leaves_nothing_behind_and_is_tried_again(tmp_path, monkeypatch):
    import torchvision.datasets
    tries = []

    class OfflineMNIST:  # what torchvision does without a network: make MNIST/raw, then raise
        def __init__(self, root: str, train: bool, download: bool):
            tries.append(root)
            (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", OfflineMNIST)
    for attempt in (1, 2):
        with pytest.raises(DataError, match="download failed: Error downloading"):
            load_mnist(tmp_path / "data" / "mnist", 28, download=True)
        assert len(tries) == attempt and os.listdir(tmp_path) == []


def test_a_corrupt_tar_is_a_clear_error(tmp_path):
    good = write_tar(tmp_path / "good.tar", {f"{i}.jpg": jpeg((89, 109), (200, 10, 10)) for i in range(2)})
    (tmp_path / "truncated.tar").write_bytes(good.read_bytes()[:700])  # header + part of the first image
    (tmp_path / "garbage.tar").write_bytes(b"not a tar" * 100)
    for name in ("truncated.tar", "garbage.tar"):
        with pytest.raises(DataError, match=f"{name} is not a readable .tar"):
            load_faces(tmp_path / name, 32, "all")
