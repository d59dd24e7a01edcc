"""The input column: the model, the picture (an example, an upload, the webcam or a paste), the crop of an uploaded
picture, and a new input made up by the model."""
from __future__ import annotations

import gradio as gr

from biglearn.app.models import MODELS
from biglearn.app.page.controls import IMAGE_OUT, LIVE_SLIDER, uploaded
from biglearn.app.page.images_events import ImagesTabEvents
from biglearn.app.pictures import list_examples
from biglearn.app.session import Studio
from biglearn.app.sliders import SHIFT_RANGE, ZOOM_RANGE
from biglearn.app.values import parse_whole
from biglearn.imaging import MAX_FILE_BYTES

EXAMPLE_GALLERIES = {"faces": "Faces the model made up (S empty)", "digits": "MNIST test digits (CC BY-SA 3.0)",
                     "drawn": "Out-of-domain drawings"}


def inputs_layout() -> dict:
    """The input column's components, by name."""
    c: dict = {}
    with gr.Column(scale=3, min_width=260):
        c["model"] = gr.Radio(list(MODELS), value="faces", label="Model", elem_id="model")
        with gr.Tabs():
            with gr.Tab("Examples"):
                c["galleries"] = {kind: example_gallery(kind, label) for kind, label in EXAMPLE_GALLERIES.items()}
            with gr.Tab("Upload / webcam / paste"):
                c["upload"] = gr.Image(type="filepath", image_mode=None, sources=["upload", "webcam", "clipboard"],
                                       label=f"Any picture (up to {MAX_FILE_BYTES // 2**20} MB)", elem_id="upload",
                                       height=260)
        c.update(crop_layout())
        c["new_input"] = gr.Button("New input made up by the model", elem_id="new-input")
    return c


def example_gallery(kind: str, label: str) -> gr.Gallery:
    """The examples of one kind (examples/<kind>/); hidden when there are none."""
    paths = [str(p) for p in list_examples(kind)]
    return gr.Gallery(paths, label=label, columns=5, height=130, allow_preview=False, format="png", interactive=False,
                      visible=bool(paths), elem_id=f"examples-{kind}")


def wire_inputs(events: ImagesTabEvents, c: dict, studio: Studio) -> None:
    events.on(c["model"].input, studio.select_model, [c["model"]])
    for kind, gallery in c["galleries"].items():
        def pick(box, evt: gr.SelectData, kind=kind):
            return events.run(lambda s: studio.use_example(s, kind, parse_whole(evt.index, "the example")), box)
        gallery.select(pick, [events.state], events.outputs, api_visibility="private")
    # Uploads skip Gradio's own decoding (preprocess=False): biglearn.imaging reads them, with clear messages for
    # damaged or oversized files. Gradio still checks that the path is one of its uploads. On `input`, not `change`:
    # a picture replacing another fires `change` twice (Chromium, Gradio 6.31), `input` once.
    events.on(c["upload"].input, lambda s, payload: studio.upload(s, uploaded(payload)), [c["upload"]],
              preprocess=False)
    wire_crop(events, c, studio)
    events.on(c["new_input"].click, studio.generate_input)


def crop_layout() -> dict:
    """How an uploaded picture is cut to the model's square."""
    with gr.Accordion("Crop of the uploaded picture", open=True):
        return {
            "crop_preview": gr.Image(label="Crop (outlined)", elem_id="crop-preview", height=200, **IMAGE_OUT),
            "zoom": gr.Slider(*ZOOM_RANGE, value=1.0, step=0.01, label="Zoom", elem_id="zoom"),
            "crop_x": gr.Slider(*SHIFT_RANGE, value=0.0, step=0.05, label="Left - right", elem_id="crop-x"),
            "crop_y": gr.Slider(*SHIFT_RANGE, value=0.0, step=0.05, label="Up - down", elem_id="crop-y"),
            "fit_digit": gr.Checkbox(True, label="Digits: re-frame the ink like MNIST", elem_id="fit-digit"),
        }


def wire_crop(events: ImagesTabEvents, c: dict, studio: Studio) -> None:
    crop = [c["zoom"], c["crop_x"], c["crop_y"], c["fit_digit"]]
    for slider in crop[:3]:
        events.on(slider.change, studio.recrop, crop, **LIVE_SLIDER)
    events.on(c["fit_digit"].input, studio.recrop, crop)
