"""The session plumbing of the "Complete images" tab: how its session starts, what its events output, and where
progress shows; every panel of the tab wires its controls through it."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import gradio as gr
from gradio.events import Dependency

from biglearn.app.page.session_box import SessionBox, TabEvents
from biglearn.app.session import USER_ERRORS, Studio

# The components that the Studio's updates name, in the order every event lists them as outputs
OUTPUT_NAMES = ("grid", "mask_text", "status", "seed", "model", "ratio", "mode", "zoom", "crop_x", "crop_y",
                "fit_digit", "crop_preview", "brush", "samples", "sweep_strip", "sweep_gif", "sweep_files",
                "mix_grid", "mix_text", "mix_layout")
OUTPUT_GROUPS = ("panels", "mix_panels")


class ImagesTabEvents(TabEvents):
    """The tab's events on the page's session box, which the page's load event starts on the faces model."""

    def __init__(self, state: gr.State, c: dict, studio: Studio) -> None:
        super().__init__(state, {name: c[name] for name in OUTPUT_NAMES}, {name: c[name] for name in OUTPUT_GROUPS},
                         c["status"])
        self.studio = studio
        # Progress on the grid and status only: every event lists every component as an output, and a progress
        # overlay left on the brush editor swallowed the next strokes (headless Chromium).
        self.progress_on = [c["grid"], c["status"]]

    def start_session(self, box: SessionBox) -> dict:
        """Start the box's session (under its lock) on the faces model, with the Brush tab open if it is."""
        box.session, updates = self.studio.start("faces")
        if box.brush_open:
            box.session, brush = self.studio.show_brush(box.session, True)
            updates = {**updates, **brush}
        return updates

    def problem(self, box: SessionBox, exc: Exception) -> dict:
        shown = super().problem(box, exc)
        if box.session is not None:  # the model radio back on the session's model
            shown[self.named["model"]] = box.session.model
        return shown

    def on(self, trigger: Callable, handler: Callable, inputs: Sequence = (), **kwargs) -> Dependency:
        kwargs.setdefault("show_progress_on", self.progress_on)
        return super().on(trigger, handler, inputs, **kwargs)

    def start(self, box: SessionBox) -> dict:
        """The page's load event."""
        with box.lock:
            try:
                if box.session is None:  # else an early event already started it: keep what the user did
                    updates = self.start_session(box)
                else:
                    s, studio = box.session, self.studio
                    updates = {**studio.view(s), **studio.controls(s), **studio.crop_view(s), **studio.mix_view(s)}
                return self.show(box, updates)
            except USER_ERRORS as exc:
                return {self.status: f"**No model available.** {exc}"}
