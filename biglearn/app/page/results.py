"""What the model made of the input: the three completion panels, samples of the same S, and the S-ratio sweep."""
from __future__ import annotations

import gradio as gr

from biglearn.app import masks as M
from biglearn.app.page.controls import IMAGE_OUT
from biglearn.app.page.images_events import ImagesTabEvents
from biglearn.app.session import Studio

PANEL_LABELS = ("Input, T greyed out", "Generated T only", "Completion (S pasted back)")


def completion_panels() -> list[gr.Image]:
    """The completion column (the Studio's 'panels'); no controls of its own."""
    with gr.Column(scale=3, min_width=260):
        return [gr.Image(label=label, elem_id=f"panel-{k}", height=256, **IMAGE_OUT)
                for k, label in enumerate(PANEL_LABELS)]


def samples_layout() -> dict:
    with gr.Tab("Samples"):
        with gr.Row():
            count = gr.Slider(2, 16, value=8, step=1, label="How many", elem_id="count")
            button = gr.Button("Samples of the same S", variant="primary", elem_id="samples-btn")
        samples = gr.Gallery(label="Completions of the same x_S with different noises", columns=8, format="png",
                             elem_id="samples", buttons=["download", "fullscreen"])
    return {"count": count, "samples_btn": button, "samples": samples}


def wire_samples(events: ImagesTabEvents, c: dict, studio: Studio) -> None:
    events.on(c["samples_btn"].click, studio.samples, [c["count"]])


def sweep_layout() -> dict:
    with gr.Tab("S-ratio sweep"):
        with gr.Row():
            mode = gr.Radio(list(M.RATIO_MODES), value="random", label="S", elem_id="sweep-mode")
            button = gr.Button("Sweep r = 0.0 ... 0.9", variant="primary", elem_id="sweep-btn")
        strip = gr.Image(label="One noise, S-ratio 0.0 ... 0.9, then the input", elem_id="sweep-strip", **IMAGE_OUT)
        with gr.Row():
            gif = gr.Image(label="As an animation", elem_id="sweep-gif", height=300, format="png", interactive=False,
                           buttons=["download"])
            files = gr.File(label="Downloads (PNG strip, GIF)", file_count="multiple", elem_id="sweep-files")
    return {"sweep_mode": mode, "sweep_btn": button, "sweep_strip": strip, "sweep_gif": gif, "sweep_files": files}


def wire_sweep(events: ImagesTabEvents, c: dict, studio: Studio) -> None:
    events.on(c["sweep_btn"].click, studio.sweep, [c["sweep_mode"]])
