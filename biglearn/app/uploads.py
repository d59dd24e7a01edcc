"""What an upload event of the page may hand to biglearn.imaging: a file inside this server's upload folder, or the
bytes of an inline capture, and nothing else.

The page's upload events take the image component's raw value (`preprocess=False`, so that biglearn.imaging reads
the file with clear messages), and any HTTP client can send any value there, a path to any file on the server
included. So the path is resolved (symlinks and `..` first) and must lie inside the upload folder; every refusal
says the same neutral words, so that an answer never tells whether a path exists.
"""
from __future__ import annotations

import base64
import binascii
from pathlib import Path

from biglearn.imaging import MAX_FILE_BYTES, ImageError

REFUSED = "this upload cannot be read; please upload the picture again"
# A base64 data URL of the largest accepted file, with room for its "data:image/...;base64," header
MAX_DATA_URL_CHARS = 4 * (MAX_FILE_BYTES // 3 + 1) + 256


def uploaded(payload, upload_root: str | Path) -> str | bytes | None:
    """An image component's raw value (a FileData dict) -> a path inside `upload_root`, or the bytes of an inline
    capture; None when the component is empty. ImageError(REFUSED) for anything else."""
    if not payload:
        return None
    if not isinstance(payload, dict):
        raise ImageError(REFUSED)
    path = payload.get("path")
    if path:
        return checked_path(path, upload_root)
    url = payload.get("url") or ""
    if isinstance(url, str) and url.startswith("data:") and "," in url:  # some webcam/clipboard captures arrive inline
        if len(url) > MAX_DATA_URL_CHARS:
            raise ImageError(f"this picture is over the {MAX_FILE_BYTES / 2**20:.0f} MB limit")
        try:
            return base64.b64decode(url.split(",", 1)[1], validate=True)
        except (binascii.Error, ValueError):
            raise ImageError(REFUSED) from None
    return None


def checked_path(path, upload_root: str | Path) -> str:
    """`path` resolved, if it names a regular file inside `upload_root` (resolved too); else ImageError(REFUSED)."""
    if not isinstance(path, str) or "\x00" in path:
        raise ImageError(REFUSED)
    try:
        root = Path(upload_root).resolve()
        resolved = Path(path).resolve()
        inside = resolved.is_relative_to(root) and resolved != root and resolved.is_file()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a name too long ...
        inside = False
    if not inside:
        raise ImageError(REFUSED)
    return str(resolved)
