import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from biglearn.data import DataError, in_split, load_dataset, load_faces, load_mnist


def jpeg(size, color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


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
