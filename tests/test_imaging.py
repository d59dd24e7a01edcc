"""Upload conversion: every mode, size and oddity becomes the model's format, or a clear ImageError."""
import io

import numpy as np
import pytest
from PIL import Image

from biglearn import imaging
from biglearn.imaging import Crop, ImageError, crop_preview, load_image, to_model_image, white_on_black


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


# ---------------------------------------------------------------- modes
@pytest.mark.parametrize("mode", ["RGB", "L", "1", "P", "CMYK", "YCbCr", "HSV", "LA", "RGBA", "I", "I;16", "F"])
def test_every_mode_loads_as_rgb(mode, tmp_path):
    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    image = base.convert("L").convert(mode) if mode in ("I", "I;16", "F", "1", "LA") else base.convert(mode)
    loaded = load_image(image)
    assert loaded.mode == "RGB" and loaded.size == (30, 20)
    for channels in (1, 3):
        out = to_model_image(loaded, 16, channels)
        assert out.shape == (16, 16, channels) and out.dtype == np.uint8


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32896, 65535]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "deep.png")  # a 16-bit PNG
    loaded = np.asarray(load_image(path))[..., 0]
    assert loaded.tolist() == [[0, 128, 255]]


def test_float_images_in_unit_range_are_scaled():
    loaded = np.asarray(load_image(Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F")))
    assert loaded[..., 0].tolist() == [[0, 128, 255]]


def test_transparency_is_flattened_onto_a_contrasting_background():
    dark_ink = np.zeros((10, 10, 4), dtype=np.uint8)
    dark_ink[4:6, :, 3] = 255                       # black strokes on a transparent background
    assert np.asarray(load_image(dark_ink))[0, 0].tolist() == [255, 255, 255]
    light_ink = dark_ink.copy()
    light_ink[..., :3] = 255                        # white strokes: the background becomes black
    assert np.asarray(load_image(light_ink))[0, 0].tolist() == [0, 0, 0]


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 200, 30, 30])
    image.paste(1, (2, 2, 6, 6))
    loaded = np.asarray(load_image(save(image, tmp_path / "p.png", transparency=0)))
    assert loaded[4, 4].tolist() == [200, 30, 30]
    assert loaded[0, 0].tolist() in ([0, 0, 0], [255, 255, 255])


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 20))    # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6                             # "rotate 90 CW to display"
    loaded = load_image(save(image, tmp_path / "rotated.jpg", exif=exif, quality=95))
    assert loaded.size == (20, 40)
    top = np.asarray(loaded)[5, 10]
    assert top[2] > 200 and top[0] < 60          # the blue half is now on top


def test_animated_gif_uses_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (12, 12), colour) for colour in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    pixel = np.asarray(load_image(path))[6, 6]
    assert pixel[0] > 200 and pixel[1] < 50


def test_webp_and_bytes_inputs():
    buffer = io.BytesIO()
    Image.new("RGB", (9, 5), (10, 200, 30)).save(buffer, "WEBP", lossless=True)
    assert load_image(buffer.getvalue()).size == (9, 5)


# ---------------------------------------------------------------- sizes and bad files
def test_one_pixel_image_becomes_a_flat_model_image():
    out = to_model_image(load_image(Image.new("RGB", (1, 1), (12, 34, 56))), 16, 3)
    assert out.shape == (16, 16, 3) and (out == [12, 34, 56]).all()


def test_huge_png_is_refused_with_a_clear_message(tmp_path):
    path = save(Image.new("1", (10_000, 10_000)), tmp_path / "huge.png")
    with pytest.raises(ImageError, match="10000x10000.*megapixels"):
        load_image(path)


def test_huge_jpeg_is_decoded_at_reduced_scale(tmp_path):
    path = save(Image.new("L", (10_000, 10_000), 90), tmp_path / "huge.jpg", quality=50)
    image = load_image(path)
    assert max(image.size) <= imaging.WORKING_SIDE


def test_big_images_are_reduced_to_the_working_size():
    image = load_image(Image.new("RGB", (3000, 1500)))
    assert image.size == (imaging.WORKING_SIDE, imaging.WORKING_SIDE // 2)


@pytest.mark.parametrize("content, message", [
    (b"definitely not an image", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|damaged"),
    # formats outside the list are not even tried: EPS (Ghostscript where installed), ICO, PPM
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n", "not an image"),
    (b"\x00\x00\x01\x00\x01\x00\x08\x08\x00\x00\x01\x00\x20\x00" + b"\x00" * 300, "not an image"),
    (b"P6\n8 8\n255\n" + b"\x7f" * 192, "not an image"),
])
def test_corrupt_files_raise_image_error(tmp_path, content, message):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_image(path)


def test_truncated_file_raises_image_error(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[:300])
    with pytest.raises(ImageError, match="damaged|truncated"):
        load_image(path)


def test_file_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(imaging, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "big.bin"
    path.write_bytes(b"\0" * 1001)
    with pytest.raises(ImageError, match="limit is"):
        load_image(path)
    with pytest.raises(ImageError, match="limit is"):
        load_image(b"\0" * 1001)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no image file"):
        load_image(tmp_path / "nothing.png")


# ---------------------------------------------------------------- crop
def test_crop_box_centre_zoom_and_offsets():
    assert Crop().box(200, 100) == (50, 0, 150, 100)
    assert Crop(zoom=2).box(200, 100) == (75, 25, 125, 75)
    assert Crop(x=1).box(200, 100) == (100, 0, 200, 100)
    assert Crop(x=-1, y=1, zoom=2).box(100, 100) == (0, 50, 50, 100)
    assert Crop(zoom=0.1).box(10, 10) == (0, 0, 10, 10)  # zoom below 1 is clamped


def test_crop_selects_the_region():
    array = np.zeros((100, 200, 3), dtype=np.uint8)
    array[:, 100:] = 255                          # right half white
    picture = load_image(array)
    # Lanczos rings by a few levels and reads a little past the crop's edge
    assert to_model_image(picture, 8, 3, crop=Crop(x=1))[:, 1:].min() >= 250
    assert to_model_image(picture, 8, 3, crop=Crop(x=-1))[:, :-1].max() <= 5


def test_uneven_lighting_is_not_taken_for_ink():
    paper = np.linspace(150, 235, 200)[None, :].repeat(160, axis=0)  # a photo lit from the right
    photo = paper.copy()
    photo[30:130, 95:110] *= 0.35                                   # a dark "1"
    ink = white_on_black(photo.astype(np.uint8))
    assert ink[:, :40].max() < 64                                   # the darker left side is paper, not ink
    assert ink[40:120, 98:107].min() > 128                          # the stroke is ink


def test_crop_preview_outlines_the_crop():
    preview = crop_preview(load_image(np.full((100, 300, 3), 200, np.uint8)), Crop())
    assert preview.shape == (100, 300, 3)          # reduced to fit 320 px, never enlarged
    assert preview[50, 5].max() < 100             # outside the crop: dimmed
    assert preview[50, 160].tolist() == [200, 200, 200]
    for size, crop in (((2000, 5), Crop(zoom=4)), ((1, 1), Crop(zoom=4))):  # thinner than a preview pixel
        assert crop_preview(Image.new("RGB", size), crop).ndim == 3


# ---------------------------------------------------------------- digits
def digit_picture(ink=0, paper=255, size=(120, 90)) -> Image.Image:
    image = Image.new("L", size, paper)
    image.paste(ink, (50, 20, 70, 70))           # a thick "1", off-centre to the right
    return image.convert("RGB")


def test_dark_ink_on_paper_becomes_white_on_black():
    out = to_model_image(load_image(digit_picture()), 32, 1, digit=True)
    assert out[0, 0, 0] == 0 and out.max() == 255


def test_white_on_black_digits_keep_their_polarity():
    out = to_model_image(load_image(digit_picture(ink=255, paper=0)), 32, 1, digit=True)
    assert out[0, 0, 0] == 0 and out.max() == 255


def test_fit_digit_frames_the_ink_like_mnist():
    out = to_model_image(load_image(digit_picture()), 28, 1, digit=True, fit_digit=True)[..., 0]
    rows, cols = np.nonzero(out > 64)
    assert 18 <= rows.max() - rows.min() + 1 <= 22   # the long side fills about 20 of 28 px
    mass = out.astype(float)
    cy = (mass.sum(1) * np.arange(28)).sum() / mass.sum()
    cx = (mass.sum(0) * np.arange(28)).sum() / mass.sum()
    assert abs(cy - 13.5) < 1.5 and abs(cx - 13.5) < 1.5


def test_blank_picture_gives_a_blank_digit():
    out = to_model_image(load_image(Image.new("RGB", (50, 50), (240, 240, 240))), 16, 1, digit=True, fit_digit=True)
    assert out.max() == 0
