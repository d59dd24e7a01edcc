"""Image outputs written to Gradio's cache atomically.

Gradio 6.31 saves every image output under a folder named by the hash of its encoded bytes, with a plain
`write_bytes`: two requests returning the same picture at once (two visitors opening the page, two API calls with
the same seed) truncate and rewrite one file while it is being served, and a client then receives fewer bytes than
the declared Content-Length ("Too little data for declared Content-Length": 1 failed download in 60 concurrent
identical /complete calls here). Gradio's own copy of files (`save_file_to_cache`) already writes a temporary file
and renames it; this does the same for pictures, and leaves a picture that is already cached as it is.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gradio import processing_utils
from PIL import Image


def save_pil_to_cache(img: Image.Image, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """Drop-in for `gradio.processing_utils.save_pil_to_cache` (same arguments and result), written atomically."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    if path.exists():  # the same bytes: touch it, as delete_cache ages files by ctime
        os.utime(path)
        return str(path)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return str(path)


def write_image_outputs_atomically() -> None:
    """Route Gradio's image caching through `save_pil_to_cache` above (idempotent)."""
    processing_utils.save_pil_to_cache = save_pil_to_cache
