import torch

from biglearn.patches import (count_to_mask, mask_from_grid, patchify, pixel_mask, random_mask, raster_mask,
                              unpatchify)


def test_patchify_round_trip_gray_and_rgb():
    for channels in (1, 3):
        images = torch.rand(2, channels, 12, 12)
        patches = patchify(images, 4)
        assert patches.shape == (2, 9, 16 * channels)
        assert torch.equal(unpatchify(patches, 4, channels), images)


def test_patch_order_is_raster():
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    patches = patchify(image, 2)
    # patch 1 is the top-right 2x2 block, patch 2 the bottom-left one
    assert patches[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]
    assert patches[0, 2].tolist() == [8.0, 9.0, 12.0, 13.0]


def test_pixel_mask_matches_patches():
    mask = torch.tensor([[True, False, False, True]])
    pixels = pixel_mask(mask, 3)
    assert pixels.shape == (1, 1, 6, 6)
    assert pixels[0, 0, :3, :3].all() and not pixels[0, 0, :3, 3:].any() and pixels[0, 0, 3:, 3:].all()


def test_count_to_mask_gives_each_sample_its_own_count():
    counts = torch.tensor([0, 3, 7])
    mask = count_to_mask(counts, torch.rand(3, 7))
    assert mask.sum(dim=1).tolist() == [0, 3, 7]


def test_random_and_raster_masks():
    mask = random_mask(64, 0.25, batch=5, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (5, 64) and (mask.sum(1) == 16).all()
    assert not torch.equal(mask[0], mask[1])
    raster = raster_mask(64, 0.5, batch=2)
    assert raster[:, :32].all() and not raster[:, 32:].any()
    grid = torch.zeros(8, 8, dtype=torch.bool)
    grid[0, 1] = True
    assert mask_from_grid(grid).nonzero().flatten().tolist() == [1]
