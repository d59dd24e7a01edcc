"""The pictures the studio completes: the built-in examples, and any picture framed as a model's input."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from biglearn.data import face_square_side
from biglearn.imaging import Crop, load_image, to_model_image
from biglearn.inference import Completer

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_KINDS = ("faces", "digits", "drawn")  # examples/<kind>/*.png; "drawn" are out-of-domain pictures


def list_examples(kind: str) -> list[Path]:
    folder = EXAMPLES_DIR / kind
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def default_framing(model: str, width: int, height: int) -> tuple[Crop, str]:
    """The crop an uploaded picture starts with, and its name: for faces the centred face square of an aligned
    CelebA picture (what the data loader crops; zoom on a 0.01 step, as the slider), else the largest centred
    square."""
    if model == "faces":
        return Crop(round(min(width, height) / face_square_side(width, height), 2)), "the training faces' framing"
    return Crop(), "centre crop"


def model_input(picture, completer: Completer, model: str, crop: Crop = Crop(), fit_digit: bool = True) -> np.ndarray:
    """Any picture (path, PIL image, array) -> the model's [S, S, C] uint8 input; digits become MNIST-like."""
    cfg = completer.cfg
    digit = model == "digits"
    return to_model_image(load_image(picture), cfg.image_size, cfg.channels, crop=crop, digit=digit,
                          fit_digit=digit and fit_digit)
