"""The "Mix faces" tab: kept patches taken from A (the input), B or C by a layout or a map clicked by hand, then
completed by the model."""
from __future__ import annotations

import gradio as gr

from biglearn.app import masks as M
from biglearn.app.page.controls import IMAGE_OUT, uploaded
from biglearn.app.page.images_events import ImagesTabEvents
from biglearn.app.session import Studio
from biglearn.app.values import parse_point

MIX_HELP = ("Kept patches (S, from the main grid) are taken from image **A** (the current input) or **B** / **C** by "
            "the layout; click the grid to paint a patch's source by hand (generated, A, B, C in turn). Then the model "
            "completes the rest.")


def mix_layout() -> dict:
    """The Mix faces tab's components, by name (the tab itself as 'mix_tab')."""
    c: dict = {}
    with gr.Tab("Mix faces") as c["mix_tab"]:
        gr.Markdown(MIX_HELP)
        with gr.Row():
            c["mix_b"] = gr.Image(type="filepath", image_mode=None, label="Image B (default: another example)",
                                  sources=["upload", "clipboard"], height=180, elem_id="mix-b")
            c["mix_c"] = gr.Image(type="filepath", image_mode=None, label="Image C (optional)",
                                  sources=["upload", "clipboard"], height=180, elem_id="mix-c")
            c["mix_layout"] = gr.Radio(list(M.LAYOUTS), value="left-right", label="Layout", elem_id="mix-layout")
        with gr.Row():
            c["mix_grid"] = gr.Image(label="Sources: A blue, B orange, C violet", elem_id="mix-grid", **IMAGE_OUT)
            with gr.Column():
                c["mix_text"] = gr.Textbox(lines=8, label="Map (A/B/C kept, . generated)", interactive=False,
                                           elem_id="mix-text")
                c["mix_btn"] = gr.Button("Mix and complete", variant="primary", elem_id="mix-btn")
        with gr.Row():
            c["mix_panels"] = [gr.Image(label=label, elem_id=f"mix-panel-{k}", height=256, **IMAGE_OUT)
                               for k, label in enumerate(["Mixed x_S", "Generated T", "Completion"])]
    return c


def wire_mix(events: ImagesTabEvents, c: dict, studio: Studio) -> None:
    events.on(c["mix_b"].input, lambda s, payload: studio.mix_upload(s, 0, uploaded(payload)), [c["mix_b"]],
              preprocess=False)
    events.on(c["mix_c"].input, lambda s, payload: studio.mix_upload(s, 1, uploaded(payload)), [c["mix_c"]],
              preprocess=False)
    events.on(c["mix_layout"].input, studio.set_layout, [c["mix_layout"]])
    events.on(c["mix_tab"].select, lambda s: (s, studio.mix_view(s)))

    def mix_click(box, evt: gr.SelectData):
        return events.run(lambda s: studio.mix_click(s, *parse_point(evt.index)), box)
    c["mix_grid"].select(mix_click, [events.state], events.outputs, api_visibility="private", trigger_mode="multiple",
                         concurrency_limit=1, show_progress="hidden")
    events.on(c["mix_btn"].click, studio.mix)
