"""Every Python block of the README runs as written, on tiny inputs and the shipped checkpoints (a README example
that fails is the first thing a new user meets)."""
from __future__ import annotations

import json
import re

import pytest
import torch
from studio_fixtures import ROOT, free_port

BLOCKS = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), flags=re.S | re.M)
DEFAULT_URL = "http://127.0.0.1:7860"


def inputs_for(block: str) -> dict:
    """What a block assumes the reader has: `images` of the model's size."""
    if "DigitsModel" in block:
        return {"images": torch.rand(4, 1, 28, 28)}
    if "Completer" in block:
        cfg = json.loads((ROOT / "checkpoints" / "celeba" / "config.json").read_text())
        model = cfg.get("model", cfg)
        return {"images": torch.rand(4, model["channels"], model["image_size"], model["image_size"])}
    return {}


@pytest.fixture(scope="module")
def app_url():
    import app
    demo = app.build_demo()
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                            **app.launch_options())
    yield url.rstrip("/")
    demo.close()


def test_the_readme_has_its_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, request, monkeypatch):
    block = BLOCKS[index]
    monkeypatch.chdir(ROOT)  # paths in the examples are relative to the repository
    if DEFAULT_URL in block:  # a gradio_client example: point it at a server of our own
        block = block.replace(DEFAULT_URL, request.getfixturevalue("app_url"))
    namespace = inputs_for(block)
    exec(compile(block, f"README.md python block {index + 1}", "exec"), namespace)
