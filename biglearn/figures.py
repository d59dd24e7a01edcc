"""Evaluation figures beyond the Fig. 3 sheets of biglearn.sheets: the paper's Fig. 4 (many S / many noises),
Fig. 5 (abused and out-of-domain sources) and line plots drawn with PIL (no matplotlib at run time).

Every sheet shows x_S with the target patches T tinted light blue, so a reader sees what the model was given.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from biglearn.inference import Completer
from biglearn.patches import patchify, pixel_mask, unpatchify
from biglearn.sheets import save_png, tile

TINT = torch.tensor([0.75, 0.85, 1.0])[:, None, None]  # colour of hidden (T) pixels in x_S displays
NOISE_COLUMNS = 8


def to_float(images: torch.Tensor) -> torch.Tensor:
    images = torch.as_tensor(images)
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def show_source(images: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """x_S for display: [B, C, H, W] + [B, L] mask -> [B, 3, H, W] with T blended into a light-blue tint."""
    rgb = to_float(images).expand(-1, 3, -1, -1) if images.shape[1] == 1 else to_float(images)
    hidden = ~pixel_mask(mask, patch_size)
    return torch.where(hidden, 0.3 * rgb + 0.7 * TINT, rgb)


def _rgb(images: torch.Tensor) -> torch.Tensor:
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def fig4_masks(completer: Completer) -> torch.Tensor:
    """[11, L] source masks of many shapes, in this order: random S at r = 0.1, 0.3, 0.5, 0.7; raster S at
    r = 0.25, 0.5; the central block; the frame around it; the left half; the bottom half; a checkerboard."""
    g = completer.grid
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    quarter, three_quarters = g // 4, g - g // 4
    shapes = [
        (rows >= quarter) & (rows < three_quarters) & (cols >= quarter) & (cols < three_quarters),
        (rows < quarter) | (rows >= three_quarters) | (cols < quarter) | (cols >= three_quarters),
        cols < g // 2,
        rows >= g // 2,
        (rows + cols) % 2 == 0,
    ]
    masks = [completer.random_mask(r, seed=10 + i)[0] for i, r in enumerate((0.1, 0.3, 0.5, 0.7))]
    masks += [completer.raster_mask(r)[0] for r in (0.25, 0.5)]
    masks += [completer.mask_from_grid(grid) for grid in shapes]
    return torch.stack(masks)


def fig4_many_sources(completer: Completer, images: torch.Tensor, seed: int = 0) -> np.ndarray:
    """Per image two rows: x_S for each S of `fig4_masks`, then its completion with one fixed noise per image."""
    masks = fig4_masks(completer)                                           # [M, L]
    rows = []
    for i, image in enumerate(to_float(images)):
        batch = image.expand(len(masks), -1, -1, -1)
        noise = completer.noise(1, seed + i).expand(len(masks), -1)
        rows += [show_source(batch, masks, completer.cfg.patch_size),
                 _rgb(completer.complete(batch, masks, noise=noise))]
    return tile(torch.cat(rows), len(masks))


def fig4_many_noises(completer: Completer, images: torch.Tensor, ratio: float = 0.25, seed: int = 0) -> np.ndarray:
    """Per image one row: x_S (random S), NOISE_COLUMNS completions with different noises, ground truth."""
    rows = []
    for i, image in enumerate(to_float(images)):
        mask = completer.random_mask(ratio, seed=seed + i).expand(NOISE_COLUMNS, -1)
        batch = image.expand(NOISE_COLUMNS, -1, -1, -1)
        out = completer.complete(batch, mask, noise=completer.noise(NOISE_COLUMNS, seed + 100 + i))
        rows += [show_source(image[None], mask[:1], completer.cfg.patch_size), _rgb(out), _rgb(image[None])]
    return tile(torch.cat(rows), NOISE_COLUMNS + 2)


# ---------------------------------------------------------------- Fig. 5: abused sources
def _block(g: int, top: int, left: int, size: int) -> torch.Tensor:
    grid = torch.zeros(g, g, dtype=torch.bool)
    grid[top:top + size, left:left + size] = True
    return grid


def relocated_sources(completer: Completer, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fig. 5(a): the central block of patches moved to the top-left corner, and duplicated side by side.

    Returns (x, source grid [g, g]) pairs; x holds the moved patches and S marks exactly where they went.
    """
    g, p, c = completer.grid, completer.cfg.patch_size, completer.cfg.channels
    size = max(1, g // 4)
    centre = (g - size) // 2
    patches = patchify(to_float(images), p).reshape(len(images), g, g, -1)   # [B, g, g, p*p*C]
    block = patches[:, centre:centre + size, centre:centre + size]
    moved = torch.zeros_like(patches)
    moved[:, :size, :size] = block
    twice = torch.zeros_like(patches)
    left = max(0, centre - size)
    twice[:, centre:centre + size, left:left + size] = block
    twice[:, centre:centre + size, left + size:left + 2 * size] = block
    duplicated = _block(g, centre, left, size) | _block(g, centre, left + size, size)

    def image(x: torch.Tensor) -> torch.Tensor:
        return unpatchify(x.reshape(len(images), g * g, -1), p, c)
    return [(image(moved), _block(g, 0, 0, size)), (image(twice), duplicated)]


def mixed_sources(completer: Completer, first: torch.Tensor, second: torch.Tensor
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fig. 5(b): patches of two images in one x_S: top rows of one + bottom rows of the other, and the frame of
    one + the centre of the other. On grids of 6+ patches a gap of unknown patches separates the parts, so the
    model must join them; smaller grids have no room for it."""
    g = completer.grid
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    quarter, gap = max(1, g // 4), int(g >= 6)
    top, bottom = rows < g // 2 - gap, rows >= g // 2 + gap
    inner = slice(quarter + gap, g - quarter - gap)
    centre = ((rows >= inner.start) & (rows < inner.stop) & (cols >= inner.start) & (cols < inner.stop))
    frame = (rows < quarter) | (rows >= g - quarter) | (cols < quarter) | (cols >= g - quarter)
    pairs = []
    for from_first, from_second in ((top, bottom), (frame, centre)):
        pick = pixel_mask(completer.mask_from_grid(from_first)[None], completer.cfg.patch_size)
        pairs.append((torch.where(pick, to_float(first), to_float(second)), from_first | from_second))
    return pairs


def abused_sheet(completer: Completer, sources: list[tuple[torch.Tensor, torch.Tensor]],
                 originals: Sequence[torch.Tensor], seed: int = 0, samples: int = 4) -> np.ndarray:
    """One row per (x, S) and image: the original(s), x_S, then `samples` completions with different noises."""
    rows = []
    for j, (built, grid) in enumerate(sources):
        mask = completer.mask_from_grid(grid)
        for i in range(len(built)):
            batch = built[i:i + 1].expand(samples, -1, -1, -1)
            out = completer.complete(batch, mask, noise=completer.noise(samples, seed + 37 * j + i))
            shown = show_source(built[i:i + 1], mask[None], completer.cfg.patch_size)
            row = [_rgb(to_float(o[i:i + 1])) for o in originals] + [shown, _rgb(out)]
            rows.append(torch.cat(row))
    return tile(torch.cat(rows), len(originals) + 1 + samples)


def ood_sheet(completer: Completer, images: torch.Tensor, ratio: float = 0.5, seed: int = 0) -> np.ndarray:
    """Fig. 5(c): out-of-domain x_S. Per image: x_S and completion for random S, then for raster S, then x."""
    n = len(images)
    x = to_float(images)
    columns = []
    for mask in (completer.random_mask(ratio, batch=n, seed=seed), completer.raster_mask(ratio, batch=n)):
        columns += [show_source(x, mask, completer.cfg.patch_size),
                    _rgb(completer.complete(x, mask, noise=completer.noise(n, seed)))]
    columns.append(_rgb(x))
    return tile(torch.stack(columns, dim=1).flatten(0, 1), len(columns))


# ---------------------------------------------------------------- line plots
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (127, 127, 127)]


def line_plot(series: dict[str, tuple[Sequence[float], Sequence[float]]], path: Path, *, title: str,
              xlabel: str, ylabel: str, width: int = 640, plot_height: int = 360) -> None:
    """A plain PIL line chart: one coloured line with dots per series, round ticks (`nice_ticks`),
    and a legend in a band under the axes so it never hides a line."""
    left, right, top, bottom = 70, 20, 36, 44
    height = plot_height + 14 * len(series) + 8
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    xs = sorted({x for xv, _ in series.values() for x in xv})
    ys = [y for _, yv in series.values() for y in yv if np.isfinite(y)]
    if not xs or not ys:
        raise ValueError("nothing to plot")
    x0, x1 = xs[0], (xs[-1] if xs[-1] > xs[0] else xs[0] + 1)
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.08 or abs(y1) * 0.1 or 1.0
    y0, y1 = y0 - pad, y1 + pad
    axis_bottom = plot_height - bottom

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (width - left - right),
                axis_bottom - (y - y0) / (y1 - y0) * (axis_bottom - top))

    draw.rectangle([left, top, width - right, axis_bottom], outline="black")
    for xv in nice_ticks(x0, x1):
        px, _ = to_px(xv, y0)
        draw.line([px, axis_bottom, px, axis_bottom + 4], fill="black")
        label = f"{xv:g}"
        draw.text((px - 3 * len(label), axis_bottom + 6), label, fill="black", font=font)
    for yv in nice_ticks(y0, y1, most=6):
        _, py = to_px(x0, yv)
        draw.line([left - 4, py, left, py], fill="black")
        draw.text((4, py - 6), f"{yv:.3g}", fill="black", font=font)
    draw.text((left, 4), title, fill="black", font=font)
    draw.text(((width - len(xlabel) * 6) / 2, axis_bottom + 22), xlabel, fill="black", font=font)
    draw.text((4, top - 16), ylabel, fill="black", font=font)
    for i, (name, (xv, yv)) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = [to_px(x, y) for x, y in zip(xv, yv) if np.isfinite(y)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        ly = plot_height + 14 * i
        draw.line([left, ly + 6, left + 20, ly + 6], fill=colour, width=2)
        draw.text((left + 26, ly), name, fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def nice_ticks(low: float, high: float, most: int = 8) -> list[float]:
    """Tick values in [low, high] at a step of 1, 2 or 5 times a power of ten, at most `most` of them: labels
    like 0, 20, 40 ... that never crowd each other, where ticks at the data's own x values (70 and 71) would."""
    span = high - low
    if span <= 0:
        return [low]
    magnitude = 10.0 ** np.floor(np.log10(span / most))
    step = next(m * magnitude for m in (1, 2, 5, 10) if span / (m * magnitude) <= most)
    first = np.ceil(low / step - 1e-9) * step
    return [float(round(v, 10)) + 0.0 for v in np.arange(first, high + step * 1e-9, step)]  # + 0.0: no "-0"


def save_sheet(array: np.ndarray, folder: Path, name: str) -> str:
    save_png(array, folder / name)
    return name
