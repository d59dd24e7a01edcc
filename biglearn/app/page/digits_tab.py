"""The "Digits: classify & generate" tab: the multi-modal MNIST model's handlers (biglearn.app.digits) in a tab of
their own, with its own session box that the tab starts when it is first opened."""
from __future__ import annotations

import gradio as gr

from biglearn.app import masks as M
from biglearn.app.digits import (ANY_LABEL, DEFAULT_GUIDANCE, DEFAULT_TEMPERATURE, GENERATE_CHOICES, LABEL_CHOICES,
                                 MAX_COUNT, MAX_TEMPERATURE, NO_LABEL, DigitsStudio)
from biglearn.app.page.controls import IMAGE_OUT, LIVE_SLIDER, RATIO_LABEL, uploaded
from biglearn.app.page.editors import ImageEditor
from biglearn.app.page.session_box import SessionBox, TabEvents, session_state
from biglearn.app.pictures import list_examples
from biglearn.app.session import USER_ERRORS
from biglearn.app.sliders import RATIO_RANGE
from biglearn.app.values import parse_point, parse_whole
from biglearn.multimodal.model import MAX_GUIDANCE, SAMPLING_ORDERS

DIGITS_INTRO = """### One model that classifies, generates and completes digits (paper §4.3, App. E)
A digit is cut into a 7x7 grid of **tokens** (a VQ-VAE's codes) and its label **y** is one more token. One
transformer models p(X<sub>T'</sub> | X<sub>S'</sub>) for any sources S' and targets T' over (y, tokens): the same
weights classify (S' = the image, T' = y), generate with or without a label, and complete kept tokens with or without a
label. Draw or upload a digit, click tokens to keep or generate them, pick a label to condition on."""


def digits_tab_layout() -> dict:
    """The components of the digits tab, by name (wired by `wire_digits_tab`)."""
    c: dict = {}
    gr.Markdown(DIGITS_INTRO)
    c["status"] = gr.Markdown("Open this tab to load the model ...", elem_id="digits-status")
    with gr.Row():
        with gr.Column(scale=3, min_width=260):
            with gr.Tabs():
                with gr.Tab("Draw", elem_id="digits-tab-draw"):
                    c["pad"] = ImageEditor(  # a sketchpad (no sources), with the page's bounds on its value
                        type="numpy", image_mode="RGBA", format="png", canvas_size=(280, 280), fixed_canvas=True,
                        sources=(),
                        height=330, brush=gr.Brush(default_size=24, colors=["#000000"], color_mode="fixed"),
                        layers=False, transforms=(), label="Draw a digit", elem_id="digits-pad")
                    c["use_pad"] = gr.Button("Use drawing", variant="primary", elem_id="digits-use-drawing")
                with gr.Tab("Upload a digit", elem_id="digits-tab-upload"):
                    c["upload"] = gr.Image(type="filepath", image_mode=None, sources=["upload", "webcam", "clipboard"],
                                           label="A picture of a digit", height=260, elem_id="digits-upload")
                with gr.Tab("Digit examples", elem_id="digits-tab-examples"):
                    c["examples"] = gr.Gallery([str(p) for p in list_examples("digits")],
                                               label="MNIST test digits (CC BY-SA 3.0)", columns=5, height=130,
                                               allow_preview=False, format="png", interactive=False,
                                               elem_id="digits-examples")
            c["new_digit"] = gr.Button("New digit from the model", elem_id="digits-new")
            c["classify"] = gr.Label(num_top_classes=3, label="p(y | x): the model classifies the whole digit",
                                     elem_id="digits-classify")
        with gr.Column(scale=4, min_width=340):
            c["grid"] = gr.Image(label="Token grid: bright = kept (S), dim = generated (T)", elem_id="digits-grid",
                                 **IMAGE_OUT)
            with gr.Row():
                c["tools"] = {name: gr.Button(name, size="sm", min_width=60, elem_id=f"digits-tool-{name}")
                              for name in M.TOOLS}
            with gr.Row():
                c["ratio"] = gr.Slider(*RATIO_RANGE, value=0.5, step=0.05, label=RATIO_LABEL, elem_id="digits-ratio")
                c["mode"] = gr.Radio(list(M.RATIO_MODES), value="random", label="S at that ratio",
                                     elem_id="digits-mode")
            c["label"] = gr.Radio(LABEL_CHOICES, value=NO_LABEL, label="Label given to the model (y in S')",
                                  elem_id="digits-label")
            with gr.Row():
                c["temperature"] = gr.Slider(0.0, MAX_TEMPERATURE, value=DEFAULT_TEMPERATURE, step=0.05,
                                             label="Temperature (0 = most likely tokens)", elem_id="digits-temperature")
                c["guidance"] = gr.Slider(0.0, MAX_GUIDANCE, value=DEFAULT_GUIDANCE, step=0.25,
                                          label="Label guidance (0 = none): how strongly a known y steers the tokens",
                                          elem_id="digits-guidance")
            with gr.Row():
                c["order"] = gr.Radio(list(SAMPLING_ORDERS), value="random", elem_id="digits-order",
                                      label="Order of generation (raster: y first, then row by row)")
                c["seed"] = gr.Number(0, precision=0, label="Seed", elem_id="digits-seed", min_width=100)
                c["resample"] = gr.Button("Resample", variant="primary", elem_id="digits-resample")
            with gr.Accordion("Mask as text", open=False):
                c["mask_text"] = gr.Textbox(lines=7, label=M.GRID_HELP, elem_id="digits-mask-text")
                c["use_text"] = gr.Button("Use this mask", size="sm", elem_id="digits-use-mask-text")
        with gr.Column(scale=3, min_width=260):
            c["panels"] = [gr.Image(label=label, elem_id=f"digits-panel-{k}", height=256, **IMAGE_OUT)
                           for k, label in enumerate(["Input, T greyed out", "Completion (S pasted back)"])]
            c["source_probs"] = gr.Label(num_top_classes=3, label="p(y | x_S): from the kept tokens only",
                                         elem_id="digits-source-probs")
    with gr.Tabs():
        with gr.Tab("Generate digits"):
            with gr.Row():
                c["gen_label"] = gr.Radio(GENERATE_CHOICES, value=ANY_LABEL, label="Label ('any': p(x, y))",
                                          elem_id="digits-gen-label")
                c["count"] = gr.Slider(1, MAX_COUNT, value=16, step=1, label="How many", elem_id="digits-count")
                c["generate"] = gr.Button("Generate", variant="primary", elem_id="digits-generate")
            c["gallery"] = gr.Gallery(label="Samples (temperature, guidance and seed from above)", columns=8,
                                      format="png", elem_id="digits-gallery", buttons=["download", "fullscreen"])
        with gr.Tab("Digit S-ratio sweep"):
            with gr.Row():
                c["sweep_mode"] = gr.Radio(list(M.RATIO_MODES), value="random", label="S", elem_id="digits-sweep-mode")
                c["sweep_btn"] = gr.Button("Sweep r = 0.0 ... 0.9", variant="primary", elem_id="digits-sweep-btn")
            c["sweep"] = gr.Image(label="One noise, S-ratio 0.0 ... 0.9 (label as chosen above), then the input",
                                  elem_id="digits-sweep", **IMAGE_OUT)
    return c


# The components that the DigitsStudio's updates name, in the order every event of the tab lists them as outputs
OUTPUT_NAMES = ("grid", "mask_text", "classify", "source_probs", "seed", "status", "label", "temperature", "guidance",
                "order", "ratio", "mode", "gallery", "sweep")


class DigitsTabEvents(TabEvents):
    """The tab's events on its own session box (see SessionBox), started when the tab is first opened."""

    def __init__(self, c: dict, studio: DigitsStudio) -> None:
        super().__init__(session_state(), {name: c[name] for name in OUTPUT_NAMES}, {"panels": c["panels"]},
                         c["status"])
        self.studio = studio

    def start_session(self, box: SessionBox) -> dict:
        box.session, updates = self.studio.start()
        return updates

    def open_tab(self, box: SessionBox) -> dict:
        with box.lock:
            try:
                if box.session is None:
                    return self.show(box, self.start_session(box))
                return {self.state: box}
            except USER_ERRORS as exc:
                return {self.status: f"**No model available.** {exc}"}


def wire_digits_tab(tab: gr.Tab, c: dict, studio: DigitsStudio) -> None:
    """Events of the digits tab: its own per-session state and lock (see SessionBox)."""
    events = DigitsTabEvents(c, studio)
    on = events.on
    tab.select(events.open_tab, [events.state], events.outputs, api_visibility="private")
    on(c["use_pad"].click, studio.use_drawing, [c["pad"]])
    on(c["upload"].input, lambda s, payload: studio.upload(s, uploaded(payload)), [c["upload"]], preprocess=False)

    def pick(box, evt: gr.SelectData):
        return events.run(lambda s: studio.use_example(s, parse_whole(evt.index, "the example")), box)
    c["examples"].select(pick, [events.state], events.outputs, api_visibility="private")
    on(c["new_digit"].click, studio.new_digit)

    def grid_click(box, evt: gr.SelectData):
        return events.run(lambda s: studio.click(s, *parse_point(evt.index)), box)
    c["grid"].select(grid_click, [events.state], events.outputs, api_visibility="private", trigger_mode="multiple",
                     concurrency_limit=1, show_progress="hidden")
    for name, button in c["tools"].items():
        on(button.click, lambda s, name=name: studio.tool(s, name))
    on(c["ratio"].change, studio.set_ratio, [c["ratio"], c["mode"]], **LIVE_SLIDER)
    on(c["mode"].input, studio.set_ratio, [c["ratio"], c["mode"]])
    on(c["label"].input, studio.set_label, [c["label"]])
    on(c["temperature"].change, studio.set_temperature, [c["temperature"]], **LIVE_SLIDER)
    on(c["guidance"].change, studio.set_guidance, [c["guidance"]], **LIVE_SLIDER)
    on(c["order"].input, studio.set_order, [c["order"]])
    on(c["seed"].submit, studio.set_seed, [c["seed"]])
    on(c["seed"].blur, studio.set_seed, [c["seed"]])
    on(c["resample"].click, studio.resample)
    on(c["use_text"].click, studio.edit_mask, [c["mask_text"]])
    on(c["generate"].click, studio.generate_many, [c["gen_label"], c["count"]])
    on(c["sweep_btn"].click, studio.sweep_view, [c["sweep_mode"]])
