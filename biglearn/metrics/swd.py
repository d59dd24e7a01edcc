"""Sliced Wasserstein distance on Laplacian-pyramid neighbourhoods, the protocol of Karras et al. 2018
("Progressive Growing of GANs"), written from the paper's description.

Per pyramid level (full resolution down to 16 px): draw 128 random 7x7 neighbourhoods per image, normalise
each set's descriptors per channel by that set's own mean and std, project both sets on 512 random unit
directions (4 repeats x 128), and average |sorted projection A - sorted projection B|. Values are reported
x1000, like the paper. Finer levels measure texture and detail; the coarsest (a low-pass residual) measures
colour and layout.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

NHOOD_SIZE = 7
NHOODS_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128  # 4 x 128 = 512 random directions per level
MIN_RESOLUTION = 16
SCALE = 1e3


def _binomial_blur(x: torch.Tensor) -> torch.Tensor:
    """5x5 binomial ([1 4 6 4 1]/16 squared) filter per channel with mirrored borders, as cv2.pyrDown uses."""
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype, device=x.device) / 16
    kernel = (taps[:, None] * taps[None, :]).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def pyramid_down(x: torch.Tensor) -> torch.Tensor:
    return _binomial_blur(x)[:, :, ::2, ::2]


def pyramid_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-stuff to twice the size, blur (x4 to keep the mean), crop to `size` (odd sizes round up on the way down)."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return (_binomial_blur(up) * 4)[:, :, :size[0], :size[1]]


def pyramid_resolutions(size: int, min_resolution: int = MIN_RESOLUTION) -> list[int]:
    """[size, size/2, ...] while >= min_resolution; always at least the full resolution."""
    resolutions = [size]
    while resolutions[-1] // 2 >= min_resolution:
        resolutions.append(resolutions[-1] // 2)
    return resolutions


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels, finest first; the last level is the low-pass residual."""
    pyramid = [images.float()]
    for _ in range(1, levels):
        coarse = pyramid_down(pyramid[-1])
        pyramid[-1] = pyramid[-1] - pyramid_up(coarse, pyramid[-1].shape[-2:])
        pyramid.append(coarse)
    return pyramid


def _neighbourhoods(level: torch.Tensor, per_image: int, generator: torch.Generator) -> torch.Tensor:
    """[N, C, H, W] -> [N * per_image, C * 7 * 7] random 7x7 patches, normalised per channel over the set."""
    n, c, h, w = level.shape
    half = NHOOD_SIZE // 2
    if h < NHOOD_SIZE or w < NHOOD_SIZE:
        raise ValueError(f"pyramid level {h}x{w} is smaller than a {NHOOD_SIZE}x{NHOOD_SIZE} neighbourhood")
    count = n * per_image
    image = torch.arange(n).repeat_interleave(per_image)
    ys = torch.randint(half, h - half, (count,), generator=generator)
    xs = torch.randint(half, w - half, (count,), generator=generator)
    offsets = torch.arange(-half, half + 1)
    rows = (ys[:, None] + offsets)[:, :, None]          # [count, 7, 1]
    cols = (xs[:, None] + offsets)[:, None, :]          # [count, 1, 7]
    desc = level[image[:, None, None], :, rows, cols]   # [count, 7, 7, C]
    desc = desc - desc.mean(dim=(0, 1, 2))
    desc = desc / desc.std(dim=(0, 1, 2)).clamp_min(1e-8)
    return desc.permute(0, 3, 1, 2).reshape(count, -1)


def descriptors(images: torch.Tensor, *, seed: int = 0, per_image: int = NHOODS_PER_IMAGE,
                min_resolution: int = MIN_RESOLUTION) -> list[torch.Tensor]:
    """Normalised neighbourhood descriptors of one image set, one [N * per_image, C*49] tensor per level.

    images: [N, C, S, S] uint8 or float (any scale: the per-set normalisation removes it).
    """
    images = torch.as_tensor(images).float()
    levels = len(pyramid_resolutions(images.shape[-1], min_resolution))
    generator = torch.Generator().manual_seed(seed)
    return [_neighbourhoods(level, per_image, generator) for level in laplacian_pyramid(images, levels)]


def _directions(dim: int, seed: int) -> torch.Tensor:
    """[dim, repeats * dirs_per_repeat] random unit vectors (all repeats at once: equal sizes, same mean)."""
    dirs = torch.randn(dim, DIR_REPEATS * DIRS_PER_REPEAT, generator=torch.Generator().manual_seed(seed))
    return dirs / dirs.norm(dim=0, keepdim=True)


def _sorted_projections(desc: torch.Tensor, dirs: torch.Tensor) -> np.ndarray:
    """[M, D] x [D, P] -> [P, M] projections sorted along M (numpy's sort is ~3x faster than torch's on CPU)."""
    return np.sort((dirs.T @ desc.T).numpy(), axis=1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, *, seed: int = 0) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between projections of a and b.

    a, b: [M, D] with the same M (equal sample sizes make sorted projections matching quantiles).
    """
    if a.shape != b.shape:
        raise ValueError(f"descriptor sets differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}; "
                         "compare image sets of equal size")
    dirs = _directions(a.shape[1], seed)
    return float(np.abs(_sorted_projections(a, dirs) - _sorted_projections(b, dirs)).mean())


class SWDReference:
    """A reference image set, projected and sorted once, so many sets can be compared with it cheaply.

    Every set draws its neighbourhoods at the same (image index, position) pairs and is projected on the same
    directions (common random numbers): unrelated sets are unaffected, identical sets score exactly 0, and
    the difference between two similar sets is measured with less sampling noise.
    """

    def __init__(self, images: torch.Tensor, *, seed: int = 0):
        self.seed = seed
        self.shape = tuple(images.shape)
        self.resolutions = pyramid_resolutions(images.shape[-1])
        desc = descriptors(images, seed=seed)
        self.dirs = [_directions(d.shape[1], seed + i) for i, d in enumerate(desc)]
        self.sorted = [_sorted_projections(d, dirs) for d, dirs in zip(desc, self.dirs)]

    def compare(self, images: torch.Tensor) -> dict:
        """{'resolutions', 'per_level', 'average'} in units of 1e-3, as reported by Karras et al."""
        if tuple(images.shape) != self.shape:
            raise ValueError(f"image sets differ in shape: {tuple(images.shape)} vs reference {self.shape}")
        desc = descriptors(images, seed=self.seed)
        per_level = [SCALE * float(np.abs(_sorted_projections(d, dirs) - ref).mean())
                     for d, dirs, ref in zip(desc, self.dirs, self.sorted)]
        return {"resolutions": self.resolutions, "per_level": per_level, "average": sum(per_level) / len(per_level)}


def swd(images_a: torch.Tensor, images_b: torch.Tensor, *, seed: int = 0) -> dict:
    """SWD between two equally sized image sets [N, C, S, S] (x1e3; per level and average)."""
    return SWDReference(images_b, seed=seed).compare(images_a)
