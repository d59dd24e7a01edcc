"""The app's models: names shown to users, where their checkpoints are found, and a per-process cache.

Resolution order for a model (e.g. "faces" -> folder "celeba"):
  1. ./checkpoints/celeba (the repository's shipped checkpoints);
  2. $BIGLEARN_CHECKPOINTS/celeba (the library's variable);
  3. the Hugging Face Hub repo $BIGLEARN_HUB_REPO, files celeba/config.json and celeba/model.safetensors
     (honours HF_HUB_OFFLINE: then only the local Hub cache is used).
If none has it, `ModelUnavailable` says where it looked and how to fix it.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from biglearn.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError
from biglearn.inference import CHECKPOINT_DIR_ENV, REPO_CHECKPOINTS, Completer

MODELS = {"faces": "celeba", "digits": "mnist"}       # name shown in the app -> checkpoint folder
MULTIMODAL_MODELS = {"multimodal": "digits-multimodal"}  # the "Digits: classify & generate" tab
HUB_REPO_ENV = "BIGLEARN_HUB_REPO"
DEFAULT_HUB_REPO = ""                                  # set to "owner/name" once checkpoints are on the Hub
DEVICE_ENV = "BIGLEARN_DEVICE"
THREADS_ENV = "BIGLEARN_THREADS"
FAILURE_TTL_S = 60.0                                   # a failed lookup is retried after this long

try:  # ZeroGPU: CUDA is attached only inside functions decorated with spaces.GPU; elsewhere a no-op.
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn=None, **_kwargs):
        return fn if fn is not None else (lambda f: f)


def configure_threads() -> int:
    """CPU threads per generator call: $BIGLEARN_THREADS, else half the cores (at least 1).

    Requests already run side by side in the queue, and on a busy 2-core machine two intra-op threads spin
    against each other: one forward of the 64 px faces model took 23 ms with 1 thread and 780 ms with 2.
    """
    import torch

    threads = int(os.environ.get(THREADS_ENV) or max(1, (os.cpu_count() or 2) // 2))
    torch.set_num_threads(threads)
    return threads


class ModelUnavailable(RuntimeError):
    """No checkpoint for a model could be found or loaded; the message is meant for the user."""


def is_checkpoint(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def find_checkpoint(model: str, models: dict[str, str] = MODELS) -> Path:
    """The folder holding config.json + model.safetensors for `model` (a key of `models`), or ModelUnavailable."""
    if model not in models:
        raise ModelUnavailable(f"unknown model {model!r}; choose one of {', '.join(models)}")
    folder = models[model]
    env_dir = os.environ.get(CHECKPOINT_DIR_ENV, "").strip()
    candidates = [REPO_CHECKPOINTS / folder] + ([Path(env_dir) / folder] if env_dir else [])
    for candidate in candidates:
        if is_checkpoint(candidate):
            return candidate
    tried = [str(c) for c in candidates] + ([] if env_dir else [f"${CHECKPOINT_DIR_ENV} (not set)"])
    repo = os.environ.get(HUB_REPO_ENV, DEFAULT_HUB_REPO).strip()
    if not repo:
        tried.append(f"the Hugging Face Hub (no repo configured: set ${HUB_REPO_ENV}=owner/name)")
    else:
        try:
            return _download(repo, folder)
        except Exception as exc:  # network, auth, missing file, offline without a cache: all mean "not here"
            mode = "offline cache only, HF_HUB_OFFLINE is set" if _offline() else "online"
            reason = (str(exc).splitlines() or [""])[0][:160]
            tried.append(f"Hub repo {repo}/{folder} ({mode}): {type(exc).__name__}: {reason}")
    trainer = "train/train_digits.py" if folder == "digits-multimodal" else f"train/train_{folder}.py"
    raise ModelUnavailable(f"No checkpoint for the {model} model ({folder}). Looked in: " + "; ".join(tried) +
                           f". Train one ({trainer}) or point ${CHECKPOINT_DIR_ENV} at a folder "
                           f"holding {folder}/{CONFIG_FILE} and {folder}/{WEIGHTS_FILE}.")


def _download(repo: str, folder: str) -> Path:
    from huggingface_hub import hf_hub_download

    paths = [Path(hf_hub_download(repo, name, subfolder=folder, local_files_only=_offline()))
             for name in (CONFIG_FILE, WEIGHTS_FILE)]
    return paths[0].parent


class ModelCache:
    """Loads each model once per process (models are read-only, so sessions can share them).

    models: app name -> checkpoint folder; loader: folder -> model (raises CheckpointError), by default the GAN's
    Completer; the digits tab passes MULTIMODAL_MODELS and DigitsModel.from_pretrained.
    """

    def __init__(self, device: str | None = None, models: dict[str, str] = MODELS,
                 loader: Callable[..., Any] = Completer.from_pretrained):
        self.device = device or os.environ.get(DEVICE_ENV, "auto")
        self.models, self.loader = models, loader
        self._loaded: dict[str, Completer] = {}
        self._failed: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, model: str):
        with self._lock:
            if model in self._loaded:
                return self._loaded[model]
            failed = self._failed.get(model)
            if failed and time.monotonic() - failed[0] < FAILURE_TTL_S:
                raise ModelUnavailable(failed[1])
            try:
                completer = self.loader(find_checkpoint(model, self.models), device=self.device)
            except (ModelUnavailable, CheckpointError) as exc:
                message = str(exc)
                self._failed[model] = (time.monotonic(), message)
                raise ModelUnavailable(message) from None
            self._loaded[model] = completer
            self._failed.pop(model, None)
            return completer

    def status(self) -> dict[str, str]:
        """model -> 'ready: <where>' or the reason it is unavailable (loads what it can)."""
        report = {}
        for model in self.models:
            try:
                loaded = self.get(model)
                cfg = loaded.cfg
                shape = (f"{cfg.image_size}px, {cfg.grid}x{cfg.grid} patches of {cfg.patch_size}px" if
                         isinstance(loaded, Completer) else f"28px, {cfg.grid}x{cfg.grid} tokens + label")
                report[model] = f"ready ({shape}, {loaded.device.type})"
            except ModelUnavailable as exc:
                report[model] = str(exc)
        return report

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()
            self._failed.clear()
