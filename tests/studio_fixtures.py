"""Shared set-up for the app tests: checkpoints for every model, without depending on leftovers in /tmp.

Shipped checkpoints (checkpoints/celeba, checkpoints/mnist, checkpoints/digits-multimodal) are used when present; for
a missing one a tiny random-initialised model is written to a temporary folder and $BIGLEARN_CHECKPOINTS points there.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

from biglearn.app.models import MODELS, MULTIMODAL_MODELS, is_checkpoint
from biglearn.checkpoint import export_sampling_checkpoint
from biglearn.config import preset
from biglearn.inference import REPO_CHECKPOINTS
from biglearn.multimodal import config as multimodal_config
from biglearn.multimodal.model import DigitsModel
from biglearn.multimodal.tokenizer import VQTokenizer
from biglearn.multimodal.transformer import AnyOrderTransformer
from biglearn.nn.generator import Generator

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "tests" / "screenshots"


def write_tiny_checkpoints(folder: Path) -> list[str]:
    """Tiny random-init checkpoints for every model not shipped in checkpoints/; returns the folders written."""
    written = []
    for dataset in MODELS.values():
        if is_checkpoint(REPO_CHECKPOINTS / dataset):
            continue
        cfg = preset(dataset, "tiny").model
        torch.manual_seed(0)
        export_sampling_checkpoint(folder / dataset, Generator(cfg), cfg, {"note": "test stand-in, random init"})
        written.append(dataset)
    for name in MULTIMODAL_MODELS.values():
        if not is_checkpoint(REPO_CHECKPOINTS / name):
            cfg = multimodal_config.preset("tiny").model
            torch.manual_seed(0)
            DigitsModel(VQTokenizer(cfg), AnyOrderTransformer(cfg), "cpu").save(folder / name, {"note": "stand-in"})
            written.append(name)
    return written


def app_environment(checkpoints: Path) -> dict[str, str]:
    """Environment for an app under test: local checkpoints only, the Hub offline, one CPU thread."""
    env = {k: v for k, v in os.environ.items() if k != "BIGLEARN_HUB_REPO"}
    env.update(BIGLEARN_CHECKPOINTS=str(checkpoints), HF_HUB_OFFLINE="1", BIGLEARN_THREADS="1",
               GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_checkpoints(tmp_path_factory):
    """Both models resolvable for this module's tests; the Hub is offline; CPU inference on one thread."""
    folder = tmp_path_factory.mktemp("checkpoints")
    write_tiny_checkpoints(folder)
    patch = pytest.MonkeyPatch()
    patch.setenv("BIGLEARN_CHECKPOINTS", str(folder))
    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.delenv("BIGLEARN_HUB_REPO", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield folder
    torch.set_num_threads(threads)
    patch.undo()
