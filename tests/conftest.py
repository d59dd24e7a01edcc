"""Shared test fixtures: where the real data live, and a skip only when they are absent (a user's clone)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
MNIST_NPZ = SHARED_DATA / "mnist" / "mnist.npz"
CELEBA_DIR = SHARED_DATA / "celeba"

sys.path.insert(0, str(REPO))


def require(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing in CI: the shared data must sit beside the clone")
        pytest.skip(f"{path} is absent (the shared data are not distributed with the repository)")
    return path


@pytest.fixture(scope="session")
def mnist_npz() -> Path:
    return require(MNIST_NPZ)


@pytest.fixture(scope="session")
def celeba_dir() -> Path:
    return require(CELEBA_DIR)
