"""The app's named API endpoints (for gradio_client), as plain functions of plain values.

Each takes an image (any picture file; converted with a centre crop), the model ('faces' or 'digits'), a mask given
as a grid string or as ratio + mode, and a seed. They share no state between calls.
"""
from __future__ import annotations

import numpy as np

from biglearn.app import masks as M
from biglearn.app import ops, render
from biglearn.app.models import MODELS
from biglearn.app.mixing import mixed_completion
from biglearn.app.pictures import model_input
from biglearn.app.session import Studio, sweep_outputs
from biglearn.app.values import check_text, parse_count, parse_seed
from biglearn.inference import Completer

ALIASES = {"celeba": "faces", "face": "faces", "mnist": "digits", "digit": "digits"}


class Api:
    def __init__(self, studio: Studio):
        self.studio = studio

    def _model(self, model: str | None) -> tuple[str, Completer]:
        name = (check_text(model, "the model") or "faces").strip().lower()
        name = ALIASES.get(name, name)
        if name not in MODELS:
            raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
        return name, self.studio.cache.get(name)

    def _input(self, image, name: str, completer: Completer, mask: np.ndarray | None = None,
               what: str = "an input image") -> np.ndarray:
        if image is None:
            if mask is not None and not mask.any():  # S empty: the input is never read
                cfg = completer.cfg
                return np.zeros((cfg.image_size, cfg.image_size, cfg.channels), dtype=np.uint8)
            needs = " (only an empty mask, i.e. joint generation, needs none)" if mask is not None else ""
            raise ValueError(f"{what} is required{needs}")
        return model_input(image, completer, name)

    def complete(self, image, model: str, mask: str, ratio: float, mode: str, seed: int):
        """-> (input with T greyed, generated T, completion, message)."""
        name, completer = self._model(model)
        seed = parse_seed(seed)
        keep = M.requested_mask(mask, ratio, mode, seed, completer.grid)
        x = self._input(image, name, completer, keep)
        done = ops.complete(completer, x, keep, seed)
        return (*render.panels(x, done.completed, keep), f"{done.message} Mask:\n{M.format_grid(keep)}")

    def samples(self, image, model: str, mask: str, ratio: float, mode: str, seed: int, count: int):
        """-> (gallery of `count` completions of the same x_S, message)."""
        name, completer = self._model(model)
        seed = parse_seed(seed)
        keep = M.requested_mask(mask, ratio, mode, seed, completer.grid)
        count = parse_count(1 if count is None else count, "count", 1, ops.MAX_SAMPLES)
        x = self._input(image, name, completer, keep)
        images = ops.samples(completer, x, keep, seed, count)
        gallery = [(render.enlarge(img), f"sample {i + 1}") for i, img in enumerate(images)]
        return gallery, f"{len(images)} samples (seed {seed}). {ops.describe(keep)}"

    def sweep(self, image, model: str, mode: str, seed: int):
        """-> (PNG strip of r = 0.0 ... 0.9 + input, animated GIF, message)."""
        name, completer = self._model(model)
        seed = parse_seed(seed)
        mode = (check_text(mode, "the mode") or "random").strip().lower()
        if mode not in M.RATIO_MODES:
            raise ValueError(f"the sweep mode must be one of {', '.join(M.RATIO_MODES)}, not {mode!r}")
        x = self._input(image, name, completer)
        out = sweep_outputs(ops.sweep(completer, x, mode, seed), mode, seed)
        return out["sweep_strip"], out["sweep_gif"], out["status"]

    def mix(self, image_a, image_b, model: str, layout: str, mask: str, ratio: float, mode: str, seed: int):
        """Kept patches from A or B by `layout` (left-right, top-bottom, centre-from-b; or 'paint' with a map of
        A/B/. in `mask`), the rest generated. -> (mixed x_S with T greyed, generated T, completion, message)."""
        name, completer = self._model(model)
        seed = parse_seed(seed)
        images = [self._input(image_a, name, completer, what="image_a"),
                  self._input(image_b, name, completer, what="image_b")]
        layout = (check_text(layout, "the layout") or "left-right").strip().lower()
        if layout == "paint":
            sources = M.parse_sources(mask, completer.grid, len(images))
        else:
            sources = M.layout_sources(layout, M.requested_mask(mask, ratio, mode, seed, completer.grid))
        result = mixed_completion(completer, images, sources, seed)
        return (*result["mix_panels"], f"{result['status']} Map:\n{M.format_sources(sources)}")

    def relocate(self, image, model: str, moves: str, copy: bool, mask: str, ratio: float, mode: str, seed: int):
        """Move (or copy) patches, e.g. moves='0,0 > 3,4; 9 > 27', then complete. -> (panels..., message)."""
        name, completer = self._model(model)
        seed = parse_seed(seed)
        keep = M.requested_mask(mask, ratio, mode, seed, completer.grid)
        steps = M.parse_moves(moves, completer.grid)
        x = self._input(image, name, completer)
        x, keep = M.moved_patches(x, keep, steps, completer.cfg.patch_size, copy=bool(copy))
        done = ops.complete(completer, x, keep, seed)
        verb = "Copied" if copy else "Moved"
        return (*render.panels(x, done.completed, keep), f"{verb} {len(steps)} patch(es). {done.message}")

    def generate(self, model: str, seed: int):
        """A joint sample x ~ p(x) (S empty). -> (image, message)."""
        name, completer = self._model(model)
        seed = parse_seed(seed)
        return render.enlarge(ops.joint_sample(completer, seed)), f"A {name} sample from p(x), seed {seed}."
