"""Patch masks as the app handles them: [grid, grid] bool arrays, True = kept (S), False = generated (T).

Also the text forms used by the API (grid strings, mix maps, patch moves) and the geometry of clicks and brush
strokes on the enlarged grid view.
"""
from __future__ import annotations

import re

import numpy as np
import torch
from PIL import Image

from biglearn.app.values import check_text, parse_number, short
from biglearn.patches import random_mask, raster_mask

KEEP = "1#xXsS"      # characters meaning "kept" in a grid string
GENERATE = "0.-_tT"  # characters meaning "generated"
SOURCES = "ABCD"     # mix maps: letter = kept, taken from image A/B/C/D; a GENERATE character = generated
TOOLS = ("all", "none", "invert", "random", "raster", "centre", "border")
RATIO_MODES = ("random", "raster")
LAYOUTS = ("left-right", "top-bottom", "centre-from-b", "paint")
GRID_HELP = ("one row per line (or rows separated by '/'), one character per patch: '#' or '1' = kept (S), "
             "'.' or '0' = generated (T)")


# ---------------------------------------------------------------- text forms
def _rows(text: str, grid: int, what: str) -> list[str]:
    cleaned = check_text(text, what).strip()
    rows = [r.strip() for r in re.split(r"[/\n,;|]+", cleaned) if r.strip()]
    if len(rows) == 1 and len(rows[0]) == grid * grid:
        rows = [rows[0][i * grid:(i + 1) * grid] for i in range(grid)]
    rows = [r.replace(" ", "") for r in rows]
    if len(rows) != grid or any(len(r) != grid for r in rows):
        shape = f"{len(rows)} rows of lengths {sorted({len(r) for r in rows})}" if rows else "nothing"
        raise ValueError(f"{what} must be {grid} rows of {grid} characters ({grid * grid} patches); got {shape}")
    return rows


def parse_grid(text: str, grid: int) -> np.ndarray:
    """A grid string (see GRID_HELP) -> [grid, grid] bool."""
    rows = _rows(text, grid, "the mask")
    bad = sorted({ch for r in rows for ch in r if ch not in KEEP + GENERATE})
    if bad:
        raise ValueError(f"the mask may only use '#'/'1' (kept) and '.'/'0' (generated), not {''.join(bad)!r}")
    return np.array([[ch in KEEP for ch in r] for r in rows], dtype=bool)


def format_grid(mask: np.ndarray) -> str:
    return "\n".join("".join("#" if v else "." for v in row) for row in mask)


def parse_sources(text: str, grid: int, count: int) -> np.ndarray:
    """A mix map ('A'/'B'/... = kept from that image, '.' = generated) -> [grid, grid] int8, -1 = generated."""
    rows = _rows(text, grid, "the mix map")
    letters = SOURCES[:count]
    bad = sorted({ch for r in rows for ch in r.upper() if ch not in letters and ch not in GENERATE})
    if bad:
        raise ValueError(f"the mix map may only use {', '.join(letters)} (kept, from that image) and '.' "
                         f"(generated), not {''.join(bad)!r}")
    return np.array([[letters.index(ch) if ch in letters else -1 for ch in r.upper()] for r in rows], dtype=np.int8)


def format_sources(sources: np.ndarray) -> str:
    return "\n".join("".join(SOURCES[v] if v >= 0 else "." for v in row) for row in sources)


# ---------------------------------------------------------------- tools
def centre_block(grid: int) -> np.ndarray:
    side = max(1, grid // 2)
    start = (grid - side) // 2
    mask = np.zeros((grid, grid), dtype=bool)
    mask[start:start + side, start:start + side] = True
    return mask


def tool_mask(tool: str, grid: int, *, ratio: float = 0.5, seed: int | None = None,
              current: np.ndarray | None = None) -> np.ndarray:
    """all / none / invert (of `current`) / random or raster at `ratio` / centre block / border."""
    length = grid * grid
    if tool == "all":
        return np.ones((grid, grid), dtype=bool)
    if tool == "none":
        return np.zeros((grid, grid), dtype=bool)
    if tool == "invert":
        return ~(current if current is not None else np.zeros((grid, grid), dtype=bool))
    if tool == "random":
        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        return random_mask(length, float(ratio), generator=generator)[0].numpy().reshape(grid, grid)
    if tool == "raster":
        return raster_mask(length, float(ratio))[0].numpy().reshape(grid, grid)
    if tool == "centre":
        return centre_block(grid)
    if tool == "border":
        return ~centre_block(grid)
    raise ValueError(f"unknown mask tool {tool!r}; choose one of {', '.join(TOOLS)}")


def requested_mask(text: str | None, ratio: float | None, mode: str | None, seed: int | None,
                   grid: int) -> np.ndarray:
    """The API's mask argument: a grid string if given, else the tool `mode` (random/raster at `ratio`, ...)."""
    if check_text(text, "the mask").strip():
        return parse_grid(text, grid)
    ratio = 0.5 if ratio is None else parse_number(ratio, "the S-ratio")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"the S-ratio must be between 0 and 1, got {ratio}")
    return tool_mask((check_text(mode, "the mode") or "random").strip().lower(), grid, ratio=ratio, seed=seed)


# ---------------------------------------------------------------- clicks and brush strokes
def cell_at(x: float, y: float, grid: int, side: int) -> tuple[int, int]:
    """(row, column) of the patch under pixel (x, y) of a side x side grid view."""
    cell = side / grid
    return int(np.clip(y // cell, 0, grid - 1)), int(np.clip(x // cell, 0, grid - 1))


def toggled(mask: np.ndarray, row: int, col: int) -> np.ndarray:
    out = mask.copy()
    out[row, col] = not out[row, col]
    return out


def brushed_cells(painted: np.ndarray, grid: int, threshold: float = 0.15) -> np.ndarray:
    """[H, W] bool of painted pixels over the grid view -> [grid, grid] bool of patches at least `threshold` covered."""
    coverage = Image.fromarray(painted.astype(np.uint8) * 255).resize((grid, grid), Image.Resampling.BOX)
    return np.asarray(coverage, dtype=np.float32) / 255.0 >= threshold


# ---------------------------------------------------------------- mixing and moving patches
def layout_sources(layout: str, mask: np.ndarray) -> np.ndarray:
    """Which image each kept patch comes from: 0 = A, 1 = B; -1 where the mask generates."""
    grid = mask.shape[0]
    rows, cols = np.indices((grid, grid))
    if layout == "left-right":
        source = (cols >= grid // 2).astype(np.int8)
    elif layout == "top-bottom":
        source = (rows >= grid // 2).astype(np.int8)
    elif layout == "centre-from-b":
        source = centre_block(grid).astype(np.int8)
    else:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS[:-1])} (or paint a map)")
    return np.where(mask, source, -1).astype(np.int8)


def next_source(sources: np.ndarray, row: int, col: int, count: int) -> np.ndarray:
    """Cycle one patch: generated -> A -> B (-> C ...) -> generated."""
    out = sources.copy()
    value = int(out[row, col]) + 1
    out[row, col] = value if value < count else -1
    return out


def mix_images(images: list[np.ndarray], sources: np.ndarray, patch: int) -> np.ndarray:
    """Assemble x_S: each patch from the image `sources` names (image A where generated; those pixels are unused)."""
    out = images[0].copy()
    for index, image in enumerate(images[1:], start=1):
        pixels = np.kron(sources == index, np.ones((patch, patch), dtype=bool))
        out[pixels] = image[pixels]
    return out


def parse_moves(text: str, grid: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """'r,c>r,c; ...' (or 'i>j' with raster patch indices) -> [((row, col), (row, col)), ...]; at most 4 moves per
    patch of the grid."""
    moves = []
    parts = [p for p in re.split(r"[;\n]+", check_text(text, "the move list")) if p.strip()]
    if len(parts) > 4 * grid * grid:
        raise ValueError(f"{len(parts)} moves; a {grid}x{grid} grid takes at most {4 * grid * grid}")
    for part in parts:
        ends = re.split(r"\s*(?:->|>|=>)\s*", part.strip())
        if len(ends) != 2:
            raise ValueError(f"a move looks like 'row,col > row,col' or 'index > index', not {short(part.strip())}")
        cells = []
        for end in ends:
            # a number longer than any index is no patch (and int() refuses 4,300+ digits with its own words)
            numbers = [int(n) if len(n) <= 6 else grid * grid for n in re.findall(r"-?\d+", end)]
            if len(numbers) == 1:
                numbers = list(divmod(numbers[0], grid))
            if len(numbers) != 2 or not all(0 <= n < grid for n in numbers):
                raise ValueError(f"{short(end.strip())} is not a patch of the {grid}x{grid} grid")
            cells.append((numbers[0], numbers[1]))
        moves.append((cells[0], cells[1]))
    if not moves:
        raise ValueError("no moves given; write e.g. '0,0 > 3,4; 1,1 > 5,5'")
    return moves


def moved_patches(image: np.ndarray, mask: np.ndarray, moves, patch: int, copy: bool):
    """Move (or copy) patches: the destination gets the source's pixels and is kept; a moved-from patch becomes
    generated unless it is itself a destination. All moves read the image as it was before them."""
    out, new_mask = image.copy(), mask.copy()
    destinations = {dst for _, dst in moves}
    for (sr, sc), (dr, dc) in moves:
        out[dr * patch:(dr + 1) * patch, dc * patch:(dc + 1) * patch] = \
            image[sr * patch:(sr + 1) * patch, sc * patch:(sc + 1) * patch]
        new_mask[dr, dc] = True
    if not copy:
        for (sr, sc), _ in moves:
            if (sr, sc) not in destinations:
                new_mask[sr, sc] = False
    return out, new_mask
