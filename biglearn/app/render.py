"""Pictures the app shows: the patch grid over the enlarged image, the three completion panels, sweep strips/GIFs.

Images here are numpy uint8 arrays [H, W, C] with C = 1 or 3; everything returned for display is RGB.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

GRID_SIDE = 480     # the clickable grid view
PANEL_SIDE = 256    # completion panels and gallery images (nearest-neighbour enlargements)
GREY = np.array([128, 128, 128], dtype=np.float32)
DIM = np.array([70, 70, 90], dtype=np.float32)
LINE = (20, 20, 20)
SOURCE_COLOURS = [(60, 140, 255), (255, 150, 40), (190, 90, 255), (60, 200, 120)]
SELECTED = (255, 220, 0)


def rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def enlarge(image: np.ndarray, side: int = PANEL_SIDE) -> np.ndarray:
    """Nearest-neighbour enlargement by the largest integer factor that fits `side` (at least 1)."""
    factor = max(1, side // image.shape[0])
    return rgb(image).repeat(factor, axis=0).repeat(factor, axis=1)


def patch_pixels(mask: np.ndarray, patch: int) -> np.ndarray:
    """[grid, grid] bool -> [grid*patch, grid*patch, 1] bool."""
    return np.kron(mask, np.ones((patch, patch), dtype=bool))[..., None]


def grey_out(image: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Patches where `keep` is False become flat grey (keep: [grid, grid] bool)."""
    patch = image.shape[0] // keep.shape[0]
    return np.where(patch_pixels(keep, patch), rgb(image), GREY.astype(np.uint8))


def panels(image: np.ndarray, completed: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """MAE-style: input with T greyed out, the generated T alone (S greyed out), the completion (S exact)."""
    return [enlarge(grey_out(image, mask)), enlarge(grey_out(completed, ~mask)), enlarge(completed)]


def grid_view(image: np.ndarray, mask: np.ndarray, *, side: int = GRID_SIDE, selected=None,
              sources: np.ndarray | None = None) -> np.ndarray:
    """The image enlarged to about `side` px with the patch grid drawn on it; generated patches (T) dimmed.

    selected: (row, col) outlined in yellow; sources: [grid, grid] int mix map, kept patches framed in their
    source's colour and lettered.
    """
    grid = mask.shape[0]
    cell = side // grid
    big = Image.fromarray(rgb(image)).resize((cell * grid, cell * grid), Image.Resampling.NEAREST)
    array = np.asarray(big, dtype=np.float32)
    dim = ~np.kron(mask, np.ones((cell, cell), dtype=bool))
    array[dim] = array[dim] * 0.3 + DIM * 0.7
    canvas = Image.fromarray(array.round().astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for k in range(1, grid):
        draw.line((k * cell, 0, k * cell, cell * grid), fill=LINE, width=1)
        draw.line((0, k * cell, cell * grid, k * cell), fill=LINE, width=1)
    if sources is not None:
        for (r, c), value in np.ndenumerate(sources):
            if value >= 0:
                colour = SOURCE_COLOURS[value % len(SOURCE_COLOURS)]
                draw.rectangle((c * cell + 1, r * cell + 1, (c + 1) * cell - 2, (r + 1) * cell - 2),
                               outline=colour, width=max(1, cell // 20))
                draw.text((c * cell + 4, r * cell + 2), "ABCD"[value], fill=colour)
    if selected is not None:
        r, c = selected
        draw.rectangle((c * cell, r * cell, (c + 1) * cell - 1, (r + 1) * cell - 1), outline=SELECTED,
                       width=max(2, cell // 12))
    return np.asarray(canvas)


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    """An enlarged image with a caption bar underneath (for GIF frames)."""
    picture = Image.fromarray(enlarge(image))
    out = Image.new("RGB", (picture.width, picture.height + 18), (0, 0, 0))
    out.paste(picture, (0, 0))
    ImageDraw.Draw(out).text((4, picture.height + 3), text, fill=(255, 255, 255))
    return np.asarray(out)


# ---------------------------------------------------------------- files for download
# The PNG strips and GIFs offered for download are written to one folder per process. Gradio copies each returned
# file into its own cache (which `delete_cache` in app.py bounds), so these are only needed until the handler has
# returned: each write first drops files older than OUTPUT_MAX_AGE_S, then the oldest until the folder holds at most
# OUTPUT_MAX_BYTES, and the folder is removed when the process exits.
OUTPUT_MAX_AGE_S = 600
OUTPUT_MAX_BYTES = 32 * 2**20
_OUTPUT_DIR: Path | None = None


def output_dir() -> Path:
    """This process's download folder, pruned (see above)."""
    global _OUTPUT_DIR
    if _OUTPUT_DIR is None:
        _OUTPUT_DIR = Path(tempfile.mkdtemp(prefix="biglearn-studio-"))
        atexit.register(shutil.rmtree, _OUTPUT_DIR, ignore_errors=True)
    prune(_OUTPUT_DIR, OUTPUT_MAX_AGE_S, OUTPUT_MAX_BYTES)
    return _OUTPUT_DIR


def prune(folder: Path, max_age_s: float, max_bytes: int) -> None:
    """Remove the files of `folder` older than `max_age_s`, then the oldest until the rest fit in `max_bytes`."""
    files = []
    for path in folder.iterdir():
        try:
            info = path.stat()
        except FileNotFoundError:  # removed by another request meanwhile
            continue
        files.append((info.st_mtime, info.st_size, path))
    cutoff, total = time.time() - max_age_s, sum(size for _, size, _ in files)
    for mtime, size, path in sorted(files):
        if mtime < cutoff or total > max_bytes:
            path.unlink(missing_ok=True)
            total -= size


def save_png(array: np.ndarray, stem: str) -> str:
    path = output_dir() / f"{stem}-{uuid.uuid4().hex[:8]}.png"
    Image.fromarray(array).save(path)
    return str(path)


def save_gif(frames: list[np.ndarray], stem: str, ms_per_frame: int = 500) -> str:
    path = output_dir() / f"{stem}-{uuid.uuid4().hex[:8]}.gif"
    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=ms_per_frame, loop=0,
                     optimize=False, disposal=1)
    return str(path)
