"""Turn an uploaded picture of any kind into the model's input format.

    picture = load_image("photo.jpg")                            # RGB, upright, first frame, long side <= 512
    x = to_model_image(picture, size=64, channels=3, crop=Crop(zoom=1.3))   # [64, 64, 3] uint8

`load_image` accepts any size, aspect and mode Pillow reads (RGBA, palette, CMYK, 16-bit, grayscale, EXIF-rotated,
animated: the first frame) and refuses files that are too big with an `ImageError` whose message says why.
`to_model_image` takes an adjustable square crop around the centre and resizes it; with `digit=True` it turns the
picture into an MNIST-style digit (white ink on black, optionally re-framed the way MNIST frames its digits).
"""
from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, UnidentifiedImageError

MAX_FILE_BYTES = 10 * 1024 * 1024   # uploads larger than this are refused
MAX_PIXELS = 50_000_000             # decoded size limit (after JPEG draft-mode reduction)
WORKING_SIDE = 512                  # uploads are reduced so that their long side is at most this (models: <= 120 px)
DIGIT_BOX = 20 / 28                 # MNIST fits each digit into a 20x20 box of the 28x28 frame
# What an upload may be: the formats the messages name. Pillow would otherwise try every decoder it has, EPS (which
# runs Ghostscript where it is installed) and rarely used ones included.
READABLE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")  # JPEG covers MPO (phone photos)
DECODE_SLOTS = 2                    # pictures decoded at once in one process (see load_image)
_DECODING = threading.BoundedSemaphore(DECODE_SLOTS)


class ImageError(ValueError):
    """An upload that cannot be used; the message is meant for the user."""


@dataclass(frozen=True)
class Crop:
    """A square crop: zoom 1 = the largest centred square, zoom 2 = half its side; x, y in [-1, 1] slide it."""

    zoom: float = 1.0
    x: float = 0.0
    y: float = 0.0

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        zoom = min(max(float(self.zoom), 1.0), 8.0)
        side = min(width, height) / zoom
        cx = width / 2 + np.clip(self.x, -1, 1) * (width - side) / 2
        cy = height / 2 + np.clip(self.y, -1, 1) * (height - side) / 2
        return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


# ---------------------------------------------------------------- loading
def _open(source) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        array = source
        if array.dtype != np.uint8:
            array = np.clip(array if array.max(initial=0) > 1 else array * 255, 0, 255).astype(np.uint8)
        return Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array)
    if isinstance(source, (bytes, bytearray)):
        if len(source) > MAX_FILE_BYTES:
            raise ImageError(_too_big_file(len(source)))
        stream = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"no image file at {path.name!r}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImageError(_too_big_file(path.stat().st_size))
        stream = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # load_image checks the size itself
            return Image.open(stream, formats=READABLE_FORMATS)
    except Image.DecompressionBombError:
        raise ImageError(f"this image has too many pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels") from None
    except UnidentifiedImageError:
        raise ImageError("this file is not an image (or is damaged): use a PNG, JPEG, GIF, WebP, BMP or TIFF") from None
    except OSError as exc:
        raise ImageError(f"cannot read this image: {exc}") from None


def _too_big_file(size: int) -> str:
    return f"the file is {size / 2**20:.1f} MB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MB"


def load_image(source) -> Image.Image:
    """A path, bytes, PIL image or array -> an 8-bit RGB PIL image, upright, first frame, long side <= WORKING_SIDE.

    Raises ImageError (with a message for the user) for unreadable, damaged or oversized files. The picture is
    shrunk right after decoding, in its own mode where Pillow can (else strip by strip after converting), and only
    then turned into 8-bit RGB: no whole-size float or high-depth copy is ever made. At most DECODE_SLOTS pictures
    are decoded at once in this process, which bounds the memory that uploads can take together.
    """
    image = _open(source)
    if image.format == "JPEG":
        image.draft("RGB", (WORKING_SIDE, WORKING_SIDE))  # decode big JPEGs at 1/2, 1/4 or 1/8 scale, cheaply
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(f"the image is {width}x{height} ({width * height / 1e6:.0f} megapixels); the limit is "
                         f"{MAX_PIXELS / 1e6:.0f} megapixels, please downscale it first")
    with _DECODING:
        try:
            image.seek(0)  # animated GIF/WebP/PNG: the first frame
            image.load()
            orientation = _exif_orientation(image)
            image = _to_rgb(_shrink(image))
        except ImageError:
            raise
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"this image is damaged or truncated ({exc})") from None
    if orientation in _ORIENTATIONS:
        image = image.transpose(_ORIENTATIONS[orientation])
    if max(image.size) > WORKING_SIDE:  # the integer reduction stops short of WORKING_SIDE; finish smoothly
        image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS)
    return image


# EXIF orientation -> the transposition that makes the picture upright (as ImageOps.exif_transpose does)
_ORIENTATIONS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                 4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _exif_orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block is not worth refusing the picture for
        return 1


# Modes that are reduced strip by strip, with the mode each strip is converted to first: Image.reduce cannot average
# palette indices, bits or 16-bit integers, and it reduces RGBA / LA through a whole-size premultiplied copy.
_REDUCE_AS = {"1": "L", "P": "RGB", "PA": "RGBA", "RGBA": "RGBA", "LA": "LA",
              "I;16": "I", "I;16L": "I", "I;16B": "I", "I;16N": "I"}
STRIP_PIXELS = 4_000_000  # pixels converted at once when a mode needs converting before it is reduced


def _shrink(image: Image.Image) -> Image.Image:
    """Reduce by the integer factor that leaves the long side at least WORKING_SIDE (box filter, in the image's own
    mode, or strip by strip in the mode of `_REDUCE_AS`); modes and sizes that need nothing are returned as they are."""
    factor = max(image.size) // WORKING_SIDE
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        mode = "PA"  # keep the transparency, flattened later like any alpha
    if factor < 2:
        return image.convert("RGBA") if mode == "PA" else image
    if mode not in _REDUCE_AS:
        return image.reduce(factor)
    width, height = image.size
    rows = factor * max(1, STRIP_PIXELS // (width * factor))  # a multiple of the factor: blocks never straddle strips
    out = Image.new(_REDUCE_AS[mode], (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(top + rows, height)))
        out.paste(strip.convert(_REDUCE_AS[mode]).reduce(factor), (0, top // factor))
    if image.mode.startswith("I;16"):
        out.info["high_depth"] = "I;16"  # 16-bit values, now held in a 32-bit image
    return out


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("RGB",):
        return image
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return Image.fromarray(_high_depth_to_uint8(np.asarray(image), image.info.get("high_depth", mode))
                               ).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        return _flatten_alpha(image.convert("RGBA"))
    if mode == "LAB":
        raise ImageError("Lab-colour images are not supported; save the picture as sRGB")
    try:
        return image.convert("RGB")
    except ValueError:
        raise ImageError(f"images in Pillow mode {mode!r} are not supported; save the picture as RGB") from None


def _high_depth_to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    values = array.astype(np.float32)
    if mode == "F":
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
    elif mode.startswith("I;16") or values.max(initial=0) > 255:
        scale = 255.0 / 65535.0
    else:
        scale = 1.0
    return np.clip(values * scale, 0, 255).round().astype(np.uint8)


def _flatten_alpha(rgba: Image.Image) -> Image.Image:
    """Composite over black or white, whichever contrasts with the visible content (white ink stays visible)."""
    array = np.asarray(rgba, dtype=np.float32)
    alpha = array[..., 3:] / 255.0
    opaque = alpha[..., 0] > 0.5
    luminance = array[..., :3].mean(axis=-1)[opaque]
    background = 0.0 if luminance.size and luminance.mean() > 127 else 255.0
    rgb = array[..., :3] * alpha + background * (1 - alpha)
    return Image.fromarray(np.clip(rgb, 0, 255).round().astype(np.uint8), "RGB")


# ---------------------------------------------------------------- converting
def to_model_image(image: Image.Image, size: int, channels: int, *, crop: Crop = Crop(), digit: bool = False,
                   fit_digit: bool = False) -> np.ndarray:
    """Crop a square (see `Crop`), resize to size x size, return [size, size, channels] uint8.

    digit: also make it MNIST-like (grayscale, white ink on black, contrast stretched); fit_digit: re-frame the ink
    so that its bounding box fills a 20/28 box centred on its centre of mass, as MNIST does.
    """
    box = crop.box(*image.size)
    if not digit:
        region = image.resize((size, size), Image.Resampling.LANCZOS, box=box)
        array = np.asarray(region.convert("RGB" if channels == 3 else "L"), dtype=np.uint8)
        return array if channels == 3 else array[..., None]
    work = 4 * size  # do the digit clean-up at a higher resolution, then downsample once
    gray = np.asarray(image.convert("L").resize((work, work), Image.Resampling.LANCZOS, box=box), dtype=np.uint8)
    ink = white_on_black(gray)
    if fit_digit:
        ink = fit_to_mnist_frame(ink)
    array = np.asarray(Image.fromarray(ink).resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)
    return np.repeat(array[..., None], channels, axis=-1)


def white_on_black(gray: np.ndarray) -> np.ndarray:
    """[H, W] uint8 -> ink 255 on background 0: inverts light backgrounds, removes uneven lighting, stretches the
    contrast."""
    values = gray.astype(np.float32)
    border = np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]])
    if np.median(border) > 127:
        values = 255 - values
    values = np.clip(values - local_background(values), 0, None)
    top = np.percentile(values, 99.5)
    if top < 8:  # nothing that looks like ink
        return np.zeros_like(gray)
    return np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)


def local_background(values: np.ndarray) -> np.ndarray:
    """The background level around each pixel of an image with light strokes on a darker ground: the darkest value
    within a quarter of the image (wider than any stroke), smoothed. A photo lit from one side has a ground that
    varies across it; one level for the whole image (the border's median) turned the darker side into ink."""
    image = Image.fromarray(values.clip(0, 255).astype(np.uint8))
    window = max(3, min(image.size) // 4) | 1  # odd, as PIL's rank filters need
    ground = image.filter(ImageFilter.MinFilter(window)).filter(ImageFilter.GaussianBlur(window / 2))
    return np.asarray(ground, dtype=np.float32)


def fit_to_mnist_frame(ink: np.ndarray) -> np.ndarray:
    """Scale the ink's bounding box to DIGIT_BOX of the frame and centre it by its centre of mass."""
    h, w = ink.shape
    rows, cols = np.nonzero(ink > 64)
    if rows.size == 0:
        return ink
    patch = Image.fromarray(ink[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1])
    scale = DIGIT_BOX * min(h, w) / max(patch.size)
    patch = patch.resize((max(1, round(patch.width * scale)), max(1, round(patch.height * scale))),
                         Image.Resampling.LANCZOS)
    mass = np.asarray(patch, dtype=np.float64)
    total = mass.sum() or 1.0
    cy = (mass.sum(axis=1) * np.arange(mass.shape[0])).sum() / total
    cx = (mass.sum(axis=0) * np.arange(mass.shape[1])).sum() / total
    top = int(np.clip(round(h / 2 - cy), 0, h - patch.height))
    left = int(np.clip(round(w / 2 - cx), 0, w - patch.width))
    canvas = Image.new("L", (w, h), 0)
    canvas.paste(patch, (left, top))
    return np.asarray(canvas, dtype=np.uint8)


def crop_preview(image: Image.Image, crop: Crop, side: int = 320) -> np.ndarray:
    """The upload reduced to fit side x side, the area outside the crop dimmed and the crop outlined."""
    preview = image.copy()
    preview.thumbnail((side, side), Image.Resampling.LANCZOS)
    scale = preview.width / image.width
    left, top, right, bottom = (v * scale for v in crop.box(*image.size))
    array = np.asarray(preview.convert("RGB"), dtype=np.float32)
    inside = np.zeros(array.shape[:2], dtype=bool)
    inside[int(top): int(np.ceil(bottom)), int(left): int(np.ceil(right))] = True
    array[~inside] = array[~inside] * 0.35
    out = Image.fromarray(array.round().astype(np.uint8))
    # At least a pixel wide: a crop thinner than a preview pixel (a 2000x5 strip, a 1x1 picture zoomed in) is
    # still outlined, where PIL refuses a rectangle whose corners cross.
    right, bottom = max(right - 1, left), max(bottom - 1, top)
    ImageDraw.Draw(out).rectangle((left, top, right, bottom), outline=(255, 200, 0), width=2)
    return np.asarray(out)

