"""The "Mix faces" panel's handlers: kept patches (S) taken from image A (the input), B or C as a layout or a map
painted by hand says, the rest generated. `Studio` (session.py) inherits them."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from biglearn.app import masks as M
from biglearn.app import ops, render
from biglearn.app.pictures import list_examples, model_input
from biglearn.app.state import Session
from biglearn.imaging import load_image
from biglearn.inference import Completer


class MixHandlers:
    """Handlers of the mix panel; the class they are mixed into gives them `completer`."""

    def completer(self, s: Session) -> Completer:
        raise NotImplementedError

    def mix_sources(self, s: Session) -> list[np.ndarray]:
        """[A, B(, C)] in the model's format: A is the current input, B an upload or else another example, C an
        upload if there is one (an upload C without B stays C)."""
        completer = self.completer(s)
        upload_b, upload_c = s.mix_uploads
        if upload_b is not None:
            b = model_input(upload_b, completer, s.model, fit_digit=True)
        else:
            examples = list_examples(s.model)
            b = (model_input(examples[1 % len(examples)], completer, s.model, fit_digit=False) if examples
                 else ops.joint_sample(completer, s.seed + 1))
        images = [s.image, b]
        if upload_c is not None:
            images.append(model_input(upload_c, completer, s.model, fit_digit=True))
        return images

    def _mix_map(self, s: Session) -> np.ndarray:
        """The painted map in 'paint' layout; otherwise the layout applied to the current S."""
        if s.mix_layout == "paint" and s.mix_map is not None and s.mix_map.shape == s.mask.shape:
            return s.mix_map
        return M.layout_sources("left-right" if s.mix_layout == "paint" else s.mix_layout, s.mask)

    def _mix_inputs(self, s: Session) -> tuple[list[np.ndarray], np.ndarray]:
        images = self.mix_sources(s)
        sources = self._mix_map(s)
        return images, np.where(sources < len(images), sources, -1).astype(np.int8)  # a C slot may be empty

    def mix_view(self, s: Session) -> dict:
        images, sources = self._mix_inputs(s)
        mixed = M.mix_images(images, sources, self.completer(s).cfg.patch_size)
        return {"mix_grid": render.grid_view(mixed, sources >= 0, sources=sources),
                "mix_text": M.format_sources(sources), "mix_layout": s.mix_layout}

    def mix_upload(self, s: Session, slot: int, picture) -> tuple[Session, dict]:
        uploads = list(s.mix_uploads)
        uploads[slot] = None if picture is None else np.asarray(load_image(picture))
        s = replace(s, mix_uploads=uploads)
        return s, self.mix_view(s)

    def set_layout(self, s: Session, layout: str) -> tuple[Session, dict]:
        if layout not in M.LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(M.LAYOUTS)}")
        s = replace(s, mix_layout=layout, mix_map=self._mix_map(s) if layout == "paint" else None)
        return s, self.mix_view(s)

    def mix_click(self, s: Session, x: float, y: float) -> tuple[Session, dict]:
        """Painting a mix by hand: each click cycles a patch generated -> A -> B (-> C) -> generated."""
        grid = s.mask.shape[0]
        row, col = M.cell_at(x, y, grid, render.GRID_SIDE // grid * grid)
        count = len(self.mix_sources(s))
        s = replace(s, mix_layout="paint", mix_map=M.next_source(self._mix_map(s), row, col, count))
        return s, {**self.mix_view(s), "status": "Painting the mix: a click cycles generated, A, B (, C)."}

    def mix(self, s: Session) -> tuple[Session, dict]:
        """Complete the mixed x_S (kept patches from A/B/C as the map says, the rest generated)."""
        images, sources = self._mix_inputs(s)
        return s, {**mixed_completion(self.completer(s), images, sources, s.seed), **self.mix_view(s)}


def mixed_completion(completer: Completer, images: list[np.ndarray], sources: np.ndarray, seed: int) -> dict:
    """The mix panels and status for a mix (also the `/mix` endpoint's)."""
    mixed = M.mix_images(images, sources, completer.cfg.patch_size)
    done = ops.complete(completer, mixed, sources >= 0, seed)
    counts = ", ".join(f"{int((sources == i).sum())} from {'ABCD'[i]}" for i in range(len(images)))
    return {"mix_panels": render.panels(mixed, done.completed, done.mask),
            "status": f"Mix: kept {counts}; generated {int((sources < 0).sum())}. {done.message}"}
