"""Cost of the worst uploads the page accepts: `python -m biglearn.app.upload_bench [--side N]`.

For each kind of picture that once took a whole-size float copy (RGBA, 16-bit, palette, CMYK, float), a file at the
pixel limit (`imaging.MAX_PIXELS`, square) and under the file-size limit is written, then read the way the app reads
an upload (`load_image`, then `to_model_image` for the faces model) in a fresh process. Reported per case: the wall
time and the peak resident memory above that process's idle state (modules imported, nothing decoded). Prints one
JSON object; `server_worst_mb` is the worst case for the whole server: every decoding slot busy with the costliest case.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from biglearn.imaging import DECODE_SLOTS, MAX_FILE_BYTES, MAX_PIXELS

# The kernel's high-water mark of this process's resident memory (VmHWM, kB); getrusage's ru_maxrss would also count
# the parent's peak from before the exec.
MEASURE = """
import sys, time
from biglearn.imaging import Crop, load_image, to_model_image
def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))
idle = status("VmRSS:")
start = time.perf_counter()
to_model_image(load_image(sys.argv[1]), 64, 3, crop=Crop())
seconds = time.perf_counter() - start
print(seconds, (status("VmHWM:") - idle) / 1024)
"""


def test_pattern(side: int) -> np.ndarray:
    """[side, side] float in [0, 1]: smooth gradients with rings, so every file format keeps it small."""
    axis = np.linspace(0, 1, side, dtype=np.float32)
    return (0.5 + 0.25 * np.sin(axis[None, :] * 40) + 0.25 * np.cos(axis[:, None] * 25)).clip(0, 1)


def write_cases(folder: Path, side: int) -> dict[str, Path]:
    pattern = test_pattern(side)
    gray8 = (pattern * 255).astype(np.uint8)
    alpha = np.where(pattern > 0.5, 255, 0).astype(np.uint8)
    rgba = Image.fromarray(np.stack([gray8, 255 - gray8, gray8 // 2, alpha], axis=-1), "RGBA")
    cases = {
        "rgba_png": (rgba, "png"),
        "gray16_png": (Image.fromarray(gray8.astype(np.uint16) * 257), "png"),  # 16-bit values, 8-bit steps
        "palette_png": (rgba.convert("RGB").quantize(64), "png"),
        "palette_transparent_png": (_transparent_palette(rgba), "png"),
        "cmyk_tiff": (rgba.convert("RGB").convert("CMYK"), "tiff"),
        "float_tiff": (Image.fromarray(gray8.astype(np.float32) / 255, "F"), "tiff"),
        "bilevel_png": (Image.fromarray(gray8 > 127), "png"),
    }
    paths = {}
    for name, (image, fmt) in cases.items():
        path = folder / f"{name}.{fmt}"
        image.save(path, **({"compression": "tiff_adobe_deflate"} if fmt == "tiff" else {}))
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SystemExit(f"{name}: {path.stat().st_size} bytes, over the upload limit; choose a smaller --side")
        paths[name] = path
    return paths


def _transparent_palette(rgba: Image.Image) -> Image.Image:
    palette = rgba.convert("RGB").quantize(63)
    indices = np.asarray(palette).copy()
    indices[np.asarray(rgba)[..., 3] == 0] = 63
    out = Image.fromarray(indices, "P")
    out.putpalette(palette.getpalette())
    out.info["transparency"] = 63
    return out


def measure(path: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True)
    seconds, megabytes = map(float, result.stdout.split())
    return {"seconds": round(seconds, 2), "peak_mb_above_idle": round(megabytes),
            "file_kb": path.stat().st_size // 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=math.isqrt(MAX_PIXELS),
                        help="side of the square test pictures (default: the largest the pixel limit accepts)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        cases = {name: measure(path) for name, path in write_cases(Path(folder), args.side).items()}
    worst = max(case["peak_mb_above_idle"] for case in cases.values())
    print(json.dumps({"side": args.side, "megapixels": round(args.side ** 2 / 1e6, 1), "cases": cases,
                      "decode_slots": DECODE_SLOTS, "server_worst_mb": worst * DECODE_SLOTS}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
