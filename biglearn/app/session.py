"""The handlers behind every control of the "Complete images" tab, as plain Python.

Each handler takes a `Session` (state.py; held per browser session in `gr.State`) and the control's values, and
returns the new session and a dict of named updates ('grid', 'panels', 'status', ...); the page (biglearn/app/page/)
maps the names to components. Handlers never mutate the session they are given. Problems the user can fix raise one
of `USER_ERRORS` (ValueError, ImageError, ModelUnavailable), whose messages are meant to be shown as they are.
The mix panel's handlers are in mixing.py; `Studio` inherits them.
"""
from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
from PIL import Image

from biglearn.app import masks as M
from biglearn.app import ops, render
from biglearn.app.mixing import MixHandlers
from biglearn.app.models import MODELS, ModelCache, ModelUnavailable
from biglearn.app.pictures import EXAMPLE_KINDS, default_framing, list_examples, model_input
from biglearn.app.sliders import RATIO_RANGE, SHIFT_RANGE, ZOOM_RANGE, slider_updates, slider_value
from biglearn.app.state import Session
from biglearn.app.values import parse_whole
from biglearn.imaging import Crop, ImageError, crop_preview, load_image
from biglearn.inference import Completer

CLICK_ACTIONS = ("toggle", "move", "copy")
USER_ERRORS = (ValueError, ImageError, ModelUnavailable)


class Studio(MixHandlers):
    """The page's behaviour; one per process, shared by all sessions (it holds only the model cache)."""

    def __init__(self, cache: ModelCache | None = None):
        self.cache = cache or ModelCache()

    def completer(self, s: Session) -> Completer:
        return self.cache.get(s.model)

    # ------------------------------------------------------------ views
    def view(self, s: Session, note: str = "") -> dict:
        """Grid, mask text, the three completion panels and a status line for the session as it is."""
        completer = self.completer(s)
        done = ops.complete(completer, s.image, s.mask, s.seed)
        timing = "" if s.mask.all() else f" Completed in {done.seconds * 1000:.0f} ms on {completer.device.type} " \
                                           f"(seed {s.seed})."
        return {
            "grid": render.grid_view(s.image, s.mask, selected=s.pending),
            "mask_text": M.format_grid(s.mask),
            "panels": render.panels(s.image, done.completed, s.mask),
            "seed": s.seed,
            "status": " ".join(part for part in (note, done.message + timing) if part),
            **(self.brush_view(s) if s.brush_open else {}),
        }

    def brush_view(self, s: Session) -> dict:
        picture = render.grid_view(s.image, s.mask)
        return {"brush": {"background": picture, "layers": [], "composite": picture}}

    def crop_view(self, s: Session) -> dict:
        if s.upload is None:
            return {"crop_preview": None}
        return {"crop_preview": crop_preview(Image.fromarray(s.upload), s.crop)}

    def controls(self, s: Session) -> dict:
        return {"model": s.model, "ratio": s.ratio, "mode": s.mode, "zoom": s.crop.zoom, "crop_x": s.crop.x,
                "crop_y": s.crop.y, "fit_digit": s.fit_digit}

    # ------------------------------------------------------------ inputs
    def start(self, model: str = "faces") -> tuple[Session, dict]:
        """A fresh session on `model`'s first example (or a sample of the model when it has no examples)."""
        s = Session(model=model)
        completer = self.completer(s)
        s = self._fit_mask(self._set_input(s, *self._default_input(s, completer)), completer.grid)
        return s, self.input_view(s)

    def input_view(self, s: Session, note: str = "") -> dict:
        """After x changed (a new input or model): every view and control, and no result of the old x left on show
        (samples, sweep, mix)."""
        cleared = {"samples": [], "sweep_strip": None, "sweep_gif": None, "sweep_files": None,
                   "mix_panels": [None, None, None]}
        return {**self.view(s, note), **self.controls(s), **self.crop_view(s), **self.mix_view(s), **cleared}

    def _default_input(self, s: Session, completer: Completer) -> tuple[np.ndarray, str]:
        examples = list_examples(s.model)
        if examples:
            return model_input(examples[0], completer, s.model, fit_digit=False), "example"
        return ops.joint_sample(completer, s.seed), "generated"

    def _set_input(self, s: Session, image: np.ndarray, source: str, upload=None) -> Session:
        changes = dict(image=image, original=image, source=source, pending=None, mix_map=None, mask_before_moves=None)
        if source != "upload":
            changes.update(upload=None, crop=Crop())
        else:
            changes["upload"] = upload
        return replace(s, **changes)

    @staticmethod
    def _fit_mask(s: Session, grid: int) -> Session:
        """Keep the mask when the grid is unchanged, else draw one at the session's ratio and mode."""
        if s.mask is not None and s.mask.shape[0] == grid:
            return s
        return replace(s, mask=M.tool_mask(s.mode, grid, ratio=s.ratio, seed=s.mask_order))

    def select_model(self, s: Session, model: str) -> tuple[Session, dict]:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}")
        if model == s.model:
            return s, {}
        new = replace(s, model=model)
        completer = self.completer(new)  # raises ModelUnavailable with the reason; the old model stays selected
        if s.source == "upload" and s.upload is not None:
            h, w = s.upload.shape[:2]
            if s.crop == default_framing(s.model, w, h)[0]:  # not adjusted: the new model's own framing
                new = replace(new, crop=default_framing(model, w, h)[0])
            image = model_input(s.upload, completer, model, new.crop, s.fit_digit)
            new = self._set_input(new, image, "upload", s.upload)
        else:
            new = self._set_input(new, *self._default_input(new, completer))
        new = self._fit_mask(new, completer.grid)
        note = f"Switched to the {model} model."
        return new, self.input_view(new, note)

    def upload(self, s: Session, picture) -> tuple[Session, dict]:
        """A new picture from upload, webcam or clipboard (path, PIL image or array); None (cleared) changes nothing."""
        if picture is None:
            return s, {}
        working = np.asarray(load_image(picture))
        completer = self.completer(s)
        h, w = working.shape[:2]
        crop, framing = default_framing(s.model, w, h)
        s = replace(s, crop=crop)
        image = model_input(working, completer, s.model, s.crop, s.fit_digit)
        s = self._set_input(s, image, "upload", working)
        note = f"Using your {w}x{h} picture ({framing}, zoom {s.crop.zoom:.2f}; adjust it under 'Crop')."
        return s, self.input_view(s, note)

    def recrop(self, s: Session, zoom, x, y, fit_digit: bool) -> tuple[Session, dict]:
        crop = Crop(slider_value(zoom, ZOOM_RANGE, "zoom"), slider_value(x, SHIFT_RANGE, "left - right shift"),
                    slider_value(y, SHIFT_RANGE, "up - down shift"))
        sliders = dict(zoom=(zoom, crop.zoom), crop_x=(x, crop.x), crop_y=(y, crop.y))
        if (crop, bool(fit_digit)) == (s.crop, s.fit_digit):  # the sliders echoing values the app set
            return s, slider_updates({}, **sliders)
        s = replace(s, crop=crop, fit_digit=bool(fit_digit))
        if s.upload is None:
            return s, slider_updates({"status": "The crop applies to uploaded pictures; upload one first."},
                                     **sliders)
        image = model_input(s.upload, self.completer(s), s.model, s.crop, s.fit_digit)
        s = self._set_input(s, image, "upload", s.upload)
        return s, slider_updates(self.input_view(s), **sliders)

    def use_example(self, s: Session, kind: str, index: int) -> tuple[Session, dict]:
        """A built-in example: faces/digits ones switch to their model; drawn ones are used like an upload."""
        examples = list_examples(kind) if kind in EXAMPLE_KINDS else []
        if not 0 <= index < len(examples):
            raise ValueError(f"there is no {kind} example number {index}")
        if kind == "drawn":
            s, updates = self.upload(s, examples[index])
            return s, {**updates, "status": f"Out-of-domain example {examples[index].name}. {updates['status']}"}
        switched = kind != s.model
        new = replace(s, model=kind)
        completer = self.completer(new)
        new = self._set_input(new, model_input(examples[index], completer, kind, fit_digit=False), "example")
        new = self._fit_mask(new, completer.grid)
        note = f"Switched to the {kind} model. " if switched else ""
        return new, self.input_view(new, note + f"Example: {examples[index].name}.")

    def generate_input(self, s: Session) -> tuple[Session, dict]:
        """A new input drawn from the model itself (S empty, a fresh seed)."""
        seed = random.randrange(2**31)
        s = self._set_input(s, ops.joint_sample(self.completer(s), seed), "generated")
        return s, self.input_view(s, f"New input sampled from the model (seed {seed}).")

    # ------------------------------------------------------------ the mask
    def mask_view(self, s: Session, note: str = "") -> dict:
        """After S changed: the main views and the mix map, whose layouts are drawn over S."""
        return {**self.view(s, note), **self.mix_view(s)}

    def click(self, s: Session, x: float, y: float, action: str = "toggle") -> tuple[Session, dict]:
        """A click at pixel (x, y) of the grid view: toggle the patch, or pick up / put down a patch to move or copy."""
        grid = s.mask.shape[0]
        row, col = M.cell_at(x, y, grid, render.GRID_SIDE // grid * grid)
        if action == "toggle":
            s = replace(s, mask=M.toggled(s.mask, row, col), pending=None)
            state = "kept (S)" if s.mask[row, col] else "generated (T)"
            return s, self.mask_view(s, f"Patch ({row}, {col}) is now {state}.")
        if action not in CLICK_ACTIONS:
            raise ValueError(f"unknown click action {action!r}")
        if s.pending is None:
            s = replace(s, pending=(row, col))
            return s, self.view(s, f"Picked patch ({row}, {col}); click where it should go.")
        if s.pending == (row, col):
            s = replace(s, pending=None)
            return s, self.view(s, "Move cancelled.")
        patch = self.completer(s).cfg.patch_size
        image, mask = M.moved_patches(s.image, s.mask, [(s.pending, (row, col))], patch, copy=action == "copy")
        verb = "Copied" if action == "copy" else "Moved"
        note = f"{verb} patch {s.pending} to ({row}, {col})."
        before = s.mask if s.mask_before_moves is None else s.mask_before_moves
        s = replace(s, image=image, mask=mask, pending=None, mask_before_moves=before)
        return s, self.mask_view(s, note)

    def undo_moves(self, s: Session) -> tuple[Session, dict]:
        """x as it was before the first move, and S too (a move keeps the patch it lands on)."""
        if s.mask_before_moves is None:
            s = replace(s, pending=None)
            return s, self.view(s, "No patch moves to undo.")
        s = replace(s, image=s.original, mask=s.mask_before_moves, pending=None, mask_before_moves=None)
        return s, self.mask_view(s, "Patch moves undone.")

    def show_brush(self, s: Session, shown: bool) -> tuple[Session, dict]:
        """The Brush tab was opened (its picture is brought up to date) or left."""
        s = replace(s, brush_open=shown)
        return s, self.brush_view(s) if shown else {}

    def tool(self, s: Session, tool: str) -> tuple[Session, dict]:
        """A mask tool; "random" also draws a new order of the patches for the S-ratio slider."""
        if tool == "random":
            s = replace(s, mask_order=random.randrange(2**31))
        mask = M.tool_mask(tool, s.mask.shape[0], ratio=s.ratio, seed=s.mask_order, current=s.mask)
        s = replace(s, mask=mask, pending=None)
        return s, self.mask_view(s)

    def set_ratio(self, s: Session, ratio, mode: str) -> tuple[Session, dict]:
        """The S-ratio slider moved (or the mode changed): S at that ratio. Random S keeps the session's order of
        the patches, so dragging the slider up only adds patches to S (a sweep by hand, as in Fig. 3) and back down
        removes them again; the Random tool draws a new order."""
        if mode not in M.RATIO_MODES:
            raise ValueError(f"the S-ratio mode must be one of {', '.join(M.RATIO_MODES)}")
        used = slider_value(ratio, RATIO_RANGE, "S-ratio")
        if (used, mode) == (s.ratio, s.mode):  # the slider echoing a value the app set: S stays as the user left it
            return s, slider_updates({}, ratio=(ratio, used))
        mask = M.tool_mask(mode, s.mask.shape[0], ratio=used, seed=s.mask_order)
        s = replace(s, ratio=used, mode=mode, mask=mask, pending=None)
        return s, slider_updates(self.mask_view(s), ratio=(ratio, used))

    def edit_mask(self, s: Session, text: str) -> tuple[Session, dict]:
        s = replace(s, mask=M.parse_grid(text, s.mask.shape[0]), pending=None)
        return s, self.mask_view(s)

    def apply_brush(self, s: Session, editor: dict | None, paint: str = "kept") -> tuple[Session, dict]:
        """Patches painted in the brush editor become kept (or generated); the result is drawn back on the grid."""
        layers = [np.asarray(layer) for layer in (editor or {}).get("layers") or [] if layer is not None]
        painted = [layer[..., 3] > 0 for layer in layers if layer.ndim == 3 and layer.shape[-1] == 4]
        if not painted or not any(p.any() for p in painted):
            raise ValueError("Nothing painted yet: brush over some patches, then press Apply.")
        cells = M.brushed_cells(np.logical_or.reduce(painted), s.mask.shape[0])
        mask = s.mask | cells if paint == "kept" else s.mask & ~cells
        s = replace(s, mask=mask, pending=None)
        what = "kept" if paint == "kept" else "generated"
        updates = self.mask_view(s, f"Brush: {int(cells.sum())} patches marked {what}.")
        # Not the editor itself: the app redraws it in a follow-up event (show_brush), not in the event that reads
        # its strokes.
        updates.pop("brush", None)
        return s, updates

    # ------------------------------------------------------------ noise
    def set_seed(self, s: Session, seed) -> tuple[Session, dict]:
        seed = parse_whole(seed, "the seed")
        if seed % 2**31 == s.seed:  # e.g. the seed box losing focus unchanged
            return s, {}
        s = replace(s, seed=seed % 2**31)
        return s, self.view(s)

    def resample(self, s: Session) -> tuple[Session, dict]:
        return self.set_seed(s, random.randrange(2**31))

    # ------------------------------------------------------------ samples and sweep
    def samples(self, s: Session, count: int) -> tuple[Session, dict]:
        # the page's slider keeps count within 2..16; ops.samples clamps to 1..16 whatever arrives
        images = ops.samples(self.completer(s), s.image, s.mask, s.seed, parse_whole(count, "count"))
        gallery = [(render.enlarge(img), f"sample {i + 1} (seed {s.seed})") for i, img in enumerate(images)]
        return s, {"samples": gallery, "status": f"{len(images)} samples of the same x_S, one noise each. " +
                   ops.describe(s.mask)}

    def sweep(self, s: Session, mode: str) -> tuple[Session, dict]:
        if mode not in M.RATIO_MODES:
            raise ValueError(f"the sweep mode must be one of {', '.join(M.RATIO_MODES)}")
        columns = ops.sweep(self.completer(s), s.image, mode, s.seed)
        return s, sweep_outputs(columns, mode, s.seed)


def sweep_outputs(columns: np.ndarray, mode: str, seed: int) -> dict:
    """The sweep panel's strip, animation, downloads and status (also the `/sweep` endpoint's)."""
    factor = max(1, 128 // columns.shape[1])  # 64 px models x2, 28-32 px x4
    strip = ops.sweep_strip(columns).repeat(factor, axis=0).repeat(factor, axis=1)
    frames = [render.labelled(col, label) for col, label in zip(columns, ops.sweep_labels())]
    png = render.save_png(strip, f"sweep-{mode}-seed{seed}")
    gif = render.save_gif(frames, f"sweep-{mode}-seed{seed}")
    return {"sweep_strip": strip, "sweep_gif": gif, "sweep_files": [png, gif],
            "status": f"S-ratio sweep ({mode} S, seed {seed}): r = 0.0 ... 0.9 with one noise, then the input."}
