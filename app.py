"""BigLearn Studio: the Gradio page. `python app.py`, then open http://127.0.0.1:7860.

Only layout and wiring live here; what each control does is in biglearn/app/ (plain Python, tested directly).
Environment: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (set on Spaces), BIGLEARN_CHECKPOINTS, BIGLEARN_HUB_REPO,
BIGLEARN_DEVICE (auto, cpu, cuda), HF_HUB_OFFLINE.
"""
from __future__ import annotations

import base64
import functools
import threading

import gradio as gr

from biglearn.app import masks as M
from biglearn.app.api import Api
from biglearn.app.digits import (ANY_LABEL, GENERATE_CHOICES, LABEL_CHOICES, MAX_COUNT, MAX_TEMPERATURE, NO_LABEL,
                                 DigitsApi, DigitsStudio)
from biglearn.app.models import MODELS, configure_threads
from biglearn.app.session import (CLICK_ACTIONS, RATIO_RANGE, SHIFT_RANGE, USER_ERRORS, ZOOM_RANGE, Studio,
                                  list_examples)
from biglearn.imaging import MAX_FILE_BYTES
from biglearn.multimodal.model import SAMPLING_ORDERS

INTRO = """# BigLearn Studio
One generator completes **any** set of patches of an image from any other set (the BigLearn-GAN of *Big Learning*).
The image is cut into a grid of patches. **S** (source) are the patches you keep: the model sees them and copies
them through exactly. **T** (target) are the patches it generates, conditioned on S: a sample of
p(x<sub>T</sub> | x<sub>S</sub>). The **S-ratio** is the share of patches in S: 0 means S is empty, i.e. joint
generation of a whole new image; 0.9 leaves little to make up. Click patches on the grid to keep or generate them,
change the noise with *Resample*, and try pictures the model never saw."""

API_HELP = f"""Named endpoints for `gradio_client` (`Client(url).predict(..., api_name="/complete")`):

| endpoint | inputs | outputs |
|---|---|---|
| `/complete` | image, model, mask, ratio, mode, seed | input with T greyed, generated T, completion, message |
| `/samples` | image, model, mask, ratio, mode, seed, count | gallery, message |
| `/sweep` | image, model, mode, seed | PNG strip, animated GIF, message |
| `/mix` | image_a, image_b, model, layout, mask, ratio, mode, seed | three panels, message |
| `/relocate` | image, model, moves, copy, mask, ratio, mode, seed | three panels, message |
| `/generate` | model, seed | a joint sample (S empty), message |
| `/digits_classify` | image | p(y \\| x) as a label with confidences, message |
| `/digits_generate` | label, count, temperature, seed, order | gallery, message (label `any`: p(x, y)) |
| `/digits_complete` | image, mask, ratio, mode, label, temperature, seed, order | 2 panels, p(y \\| x_S), message |
| `/digits_sweep` | image, mode, label, temperature, seed, order | PNG strip, message |

*image*: any picture file (`handle_file(path)`), centre-cropped to the model's square. *model*: `faces` or
`digits`. *mask*: a grid string, {M.GRID_HELP}; when blank, *mode* (`random`, `raster`, `centre`, `border`, `all`,
`none`) at S-ratio *ratio* is used. *layout*: {", ".join(M.LAYOUTS)}; `paint` reads a map of `A`/`B`/`.` from
*mask*. *moves*: `row,col > row,col; ...` or raster indices `9 > 27`. Uploads are limited to
{MAX_FILE_BYTES // 2**20} MB. Digits endpoints (the multi-modal model, a 7x7 token grid): *label* `none` / `any` or
`0`-`9` (given to the model); *temperature* 0-{MAX_TEMPERATURE:g} (0: most likely tokens); *order* `random` or
`raster` (y first, then row by row)."""

IMAGE_OUT = dict(format="png", interactive=False, buttons=["download", "fullscreen"])
# Sliders apply as they move, on `change`: dragging, arrow keys, typed numbers and the page's clamping of a number
# typed beyond the range all fire it (`release` misses all but dragging; `input` misses the clamping, leaving the
# slider and the session apart). `change` also echoes values the app sets: the handlers ignore unchanged values. A
# slow update skips the values dragged past meanwhile; values arrive unchecked and the handlers clamp them (Gradio's
# own check would mark every output failed); no progress overlay flickers.
LIVE_SLIDER = dict(trigger_mode="always_last", preprocess=False, show_progress="hidden")
RATIO_LABEL = "S-ratio (random S adds patches in one order as it rises; the random tool shuffles the order)"


class SessionBox:
    """One browser session's `Session`, held in `gr.State` and replaced only under the box's lock.

    Gradio runs a session's events concurrently (each listener has its own queue), and a `gr.State` input is read when
    an event starts and written back when it ends. Two quick actions on different controls (a patch click, then
    Resample; a tab, then a mask tool) would both start from the same Session, and whichever finished last would
    silently drop the other's change. So the State holds this box, the same object for every event of the session,
    and each handler reads the current Session, runs, and stores the new one under the lock: one at a time.

    The State's initial value is a box: Gradio gives each browser session a deep copy of it on the session's first
    event, so even events that start before the page's load event has finished share the load event's box.
    """

    def __init__(self) -> None:
        self.session = None
        self.brush_open = False  # the Brush tab was opened before the session started: start it with the tab open
        self.lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> SessionBox:
        """Only the State's initial (empty) box is ever copied, once per browser session: a new empty box."""
        return SessionBox()


def session_state() -> gr.State:
    """A `SessionBox` per browser session, dropped when idle."""
    return gr.State(SessionBox(), time_to_live=3 * 3600)


def build_demo(studio: Studio | None = None, digits: DigitsStudio | None = None) -> gr.Blocks:
    studio = studio or Studio()
    digits = digits or DigitsStudio(device=studio.cache.device)
    api = Api(studio)
    with gr.Blocks(title="BigLearn Studio", delete_cache=(3600, 7200)) as demo:
        state = session_state()
        gr.Markdown(INTRO)
        with gr.Tabs(elem_id="top-tabs"):
            with gr.Tab("Complete images", elem_id="tab-images"):
                status = gr.Markdown("Loading the model ...", elem_id="status")
                with gr.Row():
                    with gr.Column(scale=3, min_width=260):
                        model = gr.Radio(list(MODELS), value="faces", label="Model", elem_id="model")
                        with gr.Tabs():
                            with gr.Tab("Examples"):
                                galleries = {}
                                for kind, label in (("faces", "Faces the model made up (S empty)"),
                                                    ("digits", "MNIST test digits (CC BY-SA 3.0)"),
                                                    ("drawn", "Out-of-domain drawings")):
                                    paths = [str(p) for p in list_examples(kind)]
                                    galleries[kind] = gr.Gallery(
                                        paths, label=label, columns=5, height=130, allow_preview=False, format="png",
                                        interactive=False, visible=bool(paths), elem_id=f"examples-{kind}")
                            with gr.Tab("Upload / webcam / paste"):
                                upload = gr.Image(type="filepath", image_mode=None,
                                                  sources=["upload", "webcam", "clipboard"],
                                                  label=f"Any picture (up to {MAX_FILE_BYTES // 2**20} MB)",
                                                  elem_id="upload", height=260)
                        with gr.Accordion("Crop of the uploaded picture", open=True):
                            crop_preview = gr.Image(label="Crop (outlined)", elem_id="crop-preview", height=200,
                                                    **IMAGE_OUT)
                            zoom = gr.Slider(*ZOOM_RANGE, value=1.0, step=0.01, label="Zoom", elem_id="zoom")
                            crop_x = gr.Slider(*SHIFT_RANGE, value=0.0, step=0.05, label="Left - right",
                                               elem_id="crop-x")
                            crop_y = gr.Slider(*SHIFT_RANGE, value=0.0, step=0.05, label="Up - down", elem_id="crop-y")
                            fit_digit = gr.Checkbox(True, label="Digits: re-frame the ink like MNIST",
                                                    elem_id="fit-digit")
                        new_input = gr.Button("New input made up by the model", elem_id="new-input")
                    with gr.Column(scale=4, min_width=340):
                        with gr.Tabs():
                            with gr.Tab("Click patches", elem_id="tab-click") as click_tab:
                                grid = gr.Image(label="Patch grid: bright = kept (S), dim = generated (T)",
                                                elem_id="grid", **IMAGE_OUT)
                                action = gr.Radio(list(CLICK_ACTIONS), value="toggle", elem_id="click-action",
                                                  label="A click on a patch: toggles S/T, or picks it up and puts it "
                                                        "down elsewhere (move / copy)")
                                undo = gr.Button("Undo patch moves", size="sm", elem_id="undo-moves")
                            with gr.Tab("Brush", elem_id="tab-brush") as brush_tab:
                                brush = gr.ImageEditor(
                                    type="numpy", image_mode="RGBA", format="png", canvas_size=(480, 480),
                                    fixed_canvas=True,
                                    sources=(), transforms=(), layers=False, height=520, elem_id="brush",
                                    brush=gr.Brush(default_size=28, colors=["#ff2d75"], color_mode="fixed"),
                                    eraser=gr.Eraser(default_size=28), label="Paint over patches")
                                paint = gr.Radio(["kept", "generated"], value="kept", label="Painted patches become",
                                                 elem_id="paint-as")
                                apply_brush = gr.Button("Apply brush", variant="primary", elem_id="apply-brush")
                        with gr.Row():
                            tools = {name: gr.Button(name, size="sm", min_width=60, elem_id=f"tool-{name}")
                                     for name in M.TOOLS}
                        with gr.Row():
                            ratio = gr.Slider(*RATIO_RANGE, value=0.5, step=0.05, label=RATIO_LABEL, elem_id="ratio")
                            mode = gr.Radio(list(M.RATIO_MODES), value="random", label="S at that ratio",
                                            elem_id="mode")
                        with gr.Row():
                            seed = gr.Number(0, precision=0, label="Seed (noise)", elem_id="seed", min_width=100)
                            resample = gr.Button("Resample", variant="primary", elem_id="resample")
                        with gr.Accordion("Mask as text", open=False):
                            mask_text = gr.Textbox(lines=8, max_lines=16, label=M.GRID_HELP, elem_id="mask-text")
                            use_text = gr.Button("Use this mask", size="sm", elem_id="use-mask-text")
                    with gr.Column(scale=3, min_width=260):
                        panels = [gr.Image(label=label, elem_id=f"panel-{k}", height=256, **IMAGE_OUT) for k, label in
                                  enumerate(["Input, T greyed out", "Generated T only", "Completion (S pasted back)"])]
                with gr.Tabs():
                    with gr.Tab("Samples"):
                        with gr.Row():
                            count = gr.Slider(2, 16, value=8, step=1, label="How many", elem_id="count")
                            samples_btn = gr.Button("Samples of the same S", variant="primary", elem_id="samples-btn")
                        samples = gr.Gallery(label="Completions of the same x_S with different noises", columns=8,
                                             format="png", elem_id="samples", buttons=["download", "fullscreen"])
                    with gr.Tab("S-ratio sweep"):
                        with gr.Row():
                            sweep_mode = gr.Radio(list(M.RATIO_MODES), value="random", label="S", elem_id="sweep-mode")
                            sweep_btn = gr.Button("Sweep r = 0.0 ... 0.9", variant="primary", elem_id="sweep-btn")
                        sweep_strip = gr.Image(label="One noise, S-ratio 0.0 ... 0.9, then the input",
                                               elem_id="sweep-strip",
                                               **IMAGE_OUT)
                        with gr.Row():
                            sweep_gif = gr.Image(label="As an animation", elem_id="sweep-gif", height=300, format="png",
                                                 interactive=False, buttons=["download"])
                            sweep_files = gr.File(label="Downloads (PNG strip, GIF)", file_count="multiple",
                                                  elem_id="sweep-files")
                    with gr.Tab("Mix faces") as mix_tab:
                        gr.Markdown("Kept patches (S, from the main grid) are taken from image **A** (the current "
                                    "input) or "
                                    "**B** / **C** by the layout; click the grid to paint a patch's source by hand "
                                    "(generated, A, B, C in turn). Then the model completes the rest.")
                        with gr.Row():
                            mix_b = gr.Image(type="filepath", image_mode=None,
                                             label="Image B (default: another example)",
                                             sources=["upload", "clipboard"], height=180, elem_id="mix-b")
                            mix_c = gr.Image(type="filepath", image_mode=None, label="Image C (optional)",
                                             sources=["upload", "clipboard"], height=180, elem_id="mix-c")
                            layout = gr.Radio(list(M.LAYOUTS), value="left-right", label="Layout", elem_id="mix-layout")
                        with gr.Row():
                            mix_grid = gr.Image(label="Sources: A blue, B orange, C violet", elem_id="mix-grid",
                                                **IMAGE_OUT)
                            with gr.Column():
                                mix_text = gr.Textbox(lines=8, label="Map (A/B/C kept, . generated)", interactive=False,
                                                      elem_id="mix-text")
                                mix_btn = gr.Button("Mix and complete", variant="primary", elem_id="mix-btn")
                        with gr.Row():
                            mix_panels = [gr.Image(label=label, elem_id=f"mix-panel-{k}", height=256, **IMAGE_OUT)
                                          for k, label in enumerate(["Mixed x_S", "Generated T", "Completion"])]
                    with gr.Tab("API"):
                        gr.Markdown(API_HELP)
            with gr.Tab("Digits: classify & generate", elem_id="tab-digits") as digits_tab:
                digits_layout = digits_tab_layout()

        # ---------------------------------------------------------------- wiring
        named = {"grid": grid, "mask_text": mask_text, "status": status, "seed": seed, "model": model,
                 "ratio": ratio, "mode": mode, "zoom": zoom, "crop_x": crop_x, "crop_y": crop_y,
                 "fit_digit": fit_digit, "crop_preview": crop_preview, "brush": brush, "samples": samples,
                 "sweep_strip": sweep_strip, "sweep_gif": sweep_gif, "sweep_files": sweep_files,
                 "mix_grid": mix_grid, "mix_text": mix_text, "mix_layout": layout}
        groups = {"panels": panels, "mix_panels": mix_panels}
        outputs = [state, *named.values(), *panels, *mix_panels]

        def show(box: SessionBox, updates: dict) -> dict:
            shown = {state: box}
            for name, value in updates.items():
                if name in groups:
                    shown.update(zip(groups[name], value))
                else:
                    shown[named[name]] = value
            return shown

        def start_session(box: SessionBox) -> dict:
            """Start the box's session (under its lock) on the faces model, with the Brush tab open if it is."""
            box.session, updates = studio.start("faces")
            if box.brush_open:
                box.session, brush = studio.show_brush(box.session, True)
                updates = {**updates, **brush}
            return updates

        def run(handler, box: SessionBox, *args) -> dict:
            """Call a session handler on the session as it is now (one event at a time per browser session, see
            SessionBox); problems the user can fix become a warning and a status line."""
            with box.lock:
                try:
                    if box.session is None:  # the page's load event failed (e.g. no model) or is still running
                        start_session(box)
                    box.session, updates = handler(box.session, *args)
                    return show(box, updates)
                except USER_ERRORS as exc:
                    gr.Warning(str(exc))
                    shown = {status: f"**Problem:** {exc}"}
                    if box.session is not None:
                        shown[model] = box.session.model
                    return shown

        def on(trigger, handler, inputs=(), **kwargs):
            # Progress on the grid and status only: every event lists every component as an output, and a
            # progress overlay left on the brush editor swallowed the next strokes (headless Chromium).
            kwargs.setdefault("show_progress_on", [grid, status])
            return trigger(lambda box, *args: run(handler, box, *args), [state, *inputs], outputs,
                           api_visibility="private", **kwargs)

        def start(box: SessionBox):
            with box.lock:
                try:
                    if box.session is None:  # else an early event already started it: keep what the user did
                        updates = start_session(box)
                    else:
                        s = box.session
                        updates = {**studio.view(s), **studio.controls(s), **studio.crop_view(s),
                                   **studio.mix_view(s)}
                    return show(box, updates)
                except USER_ERRORS as exc:
                    return {status: f"**No model available.** {exc}"}

        demo.load(start, [state], outputs, api_visibility="private")
        on(model.input, studio.select_model, [model])
        for kind, gallery in galleries.items():
            def pick(box, evt: gr.SelectData, kind=kind):
                return run(lambda s: studio.use_example(s, kind, evt.index), box)
            gallery.select(pick, [state], outputs, api_visibility="private")
        # Uploads skip Gradio's own decoding (preprocess=False): biglearn.imaging reads them, with clear messages
        # for damaged or oversized files. Gradio still checks that the path is one of its uploads. On `input`, not
        # `change`: a picture replacing another fires `change` twice (Chromium, Gradio 6.31), `input` once.
        on(upload.input, lambda s, payload: studio.upload(s, uploaded(payload)), [upload], preprocess=False)
        for slider in (zoom, crop_x, crop_y):
            on(slider.change, studio.recrop, [zoom, crop_x, crop_y, fit_digit], **LIVE_SLIDER)
        on(fit_digit.input, studio.recrop, [zoom, crop_x, crop_y, fit_digit])
        on(new_input.click, studio.generate_input)

        def grid_click(box, click_action, evt: gr.SelectData):
            return run(lambda s: studio.click(s, evt.index[0], evt.index[1], click_action), box)
        grid.select(grid_click, [state, action], outputs, api_visibility="private", trigger_mode="multiple",
                    concurrency_limit=1, show_progress="hidden")  # one at a time: fast clicks all count
        on(undo.click, studio.undo_moves)

        def tab_shown(brush_open: bool):
            # Gradio selects the first tab by itself while the page loads. Before the load event has started the
            # session, the tab is noted for it to open with; starting a session here instead would put a "Problem"
            # warning in place of the page's own message when there is no model.
            def shown(box: SessionBox):
                with box.lock:
                    if box.session is None:
                        box.brush_open = brush_open
                        return {state: box}  # (an empty dict would be read as one value)
                return run(lambda s: studio.show_brush(s, brush_open), box)
            return shown
        for tab, brush_open in ((brush_tab, True), (click_tab, False)):
            tab.select(tab_shown(brush_open), [state], outputs, api_visibility="private",
                       show_progress_on=[grid, status])
        on(apply_brush.click, studio.apply_brush, [brush, paint]).then(
            lambda box: run(lambda s: studio.show_brush(s, True), box), [state], outputs, api_visibility="private",
            show_progress_on=[grid, status])
        for name, button in tools.items():
            on(button.click, lambda s, name=name: studio.tool(s, name))
        on(ratio.change, studio.set_ratio, [ratio, mode], **LIVE_SLIDER)
        on(mode.input, studio.set_ratio, [ratio, mode])
        on(seed.submit, studio.set_seed, [seed])
        on(seed.blur, studio.set_seed, [seed])  # a seed typed, then a button pressed: the button uses it
        on(resample.click, studio.resample)
        on(use_text.click, studio.edit_mask, [mask_text])
        on(samples_btn.click, studio.samples, [count])
        on(sweep_btn.click, studio.sweep, [sweep_mode])
        on(mix_b.input, lambda s, payload: studio.mix_upload(s, 0, uploaded(payload)), [mix_b], preprocess=False)
        on(mix_c.input, lambda s, payload: studio.mix_upload(s, 1, uploaded(payload)), [mix_c], preprocess=False)
        on(layout.input, studio.set_layout, [layout])
        on(mix_tab.select, lambda s: (s, studio.mix_view(s)))

        def mix_click(box, evt: gr.SelectData):
            return run(lambda s: studio.mix_click(s, evt.index[0], evt.index[1]), box)
        mix_grid.select(mix_click, [state], outputs, api_visibility="private", trigger_mode="multiple",
                        concurrency_limit=1, show_progress="hidden")
        on(mix_btn.click, studio.mix)

        wire_digits_tab(digits_tab, digits_layout, digits)
        add_api(api, DigitsApi(digits.cache))
    return demo


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
                    c["pad"] = gr.Sketchpad(
                        type="numpy", image_mode="RGBA", format="png", canvas_size=(280, 280), fixed_canvas=True,
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
                c["temperature"] = gr.Slider(0.0, MAX_TEMPERATURE, value=1.0, step=0.05,
                                             label="Temperature (0 = most likely tokens)", elem_id="digits-temperature")
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
            c["gallery"] = gr.Gallery(label="Samples (temperature and seed from above)", columns=8, format="png",
                                      elem_id="digits-gallery", buttons=["download", "fullscreen"])
        with gr.Tab("Digit S-ratio sweep"):
            with gr.Row():
                c["sweep_mode"] = gr.Radio(list(M.RATIO_MODES), value="random", label="S", elem_id="digits-sweep-mode")
                c["sweep_btn"] = gr.Button("Sweep r = 0.0 ... 0.9", variant="primary", elem_id="digits-sweep-btn")
            c["sweep"] = gr.Image(label="One noise, S-ratio 0.0 ... 0.9 (label as chosen above), then the input",
                                  elem_id="digits-sweep", **IMAGE_OUT)
    return c


def wire_digits_tab(tab, c: dict, studio: DigitsStudio) -> None:
    """Events of the digits tab: its own per-session state and lock (see SessionBox)."""
    state = session_state()
    single = ["grid", "mask_text", "classify", "source_probs", "seed", "status", "label", "temperature", "order",
              "ratio", "mode", "gallery", "sweep"]
    outputs = [state, *(c[name] for name in single), *c["panels"]]

    def show(box: SessionBox, updates: dict) -> dict:
        shown = {state: box}
        for name, value in updates.items():
            if name == "panels":
                shown.update(zip(c["panels"], value))
            else:
                shown[c[name]] = value
        return shown

    def run(handler, box: SessionBox, *args) -> dict:
        with box.lock:
            try:
                if box.session is None:
                    box.session, _ = studio.start()
                box.session, updates = handler(box.session, *args)
                return show(box, updates)
            except USER_ERRORS as exc:
                gr.Warning(str(exc))
                return {c["status"]: f"**Problem:** {exc}"}

    def on(trigger, handler, inputs=(), **kwargs):
        trigger(lambda box, *args: run(handler, box, *args), [state, *inputs], outputs, api_visibility="private",
                **kwargs)

    def open_tab(box: SessionBox):
        with box.lock:
            try:
                if box.session is None:
                    box.session, updates = studio.start()
                    return show(box, updates)
                return {state: box}
            except USER_ERRORS as exc:
                return {c["status"]: f"**No model available.** {exc}"}

    tab.select(open_tab, [state], outputs, api_visibility="private")
    on(c["use_pad"].click, studio.use_drawing, [c["pad"]])
    on(c["upload"].input, lambda s, payload: studio.upload(s, uploaded(payload)), [c["upload"]], preprocess=False)

    def pick(box, evt: gr.SelectData):
        return run(lambda s: studio.use_example(s, evt.index), box)
    c["examples"].select(pick, [state], outputs, api_visibility="private")
    on(c["new_digit"].click, studio.new_digit)

    def grid_click(box, evt: gr.SelectData):
        return run(lambda s: studio.click(s, evt.index[0], evt.index[1]), box)
    c["grid"].select(grid_click, [state], outputs, api_visibility="private", trigger_mode="multiple",
                     concurrency_limit=1, show_progress="hidden")
    for name, button in c["tools"].items():
        on(button.click, lambda s, name=name: studio.tool(s, name))
    on(c["ratio"].change, studio.set_ratio, [c["ratio"], c["mode"]], **LIVE_SLIDER)
    on(c["mode"].input, studio.set_ratio, [c["ratio"], c["mode"]])
    on(c["label"].input, studio.set_label, [c["label"]])
    on(c["temperature"].change, studio.set_temperature, [c["temperature"]], **LIVE_SLIDER)
    on(c["order"].input, studio.set_order, [c["order"]])
    on(c["seed"].submit, studio.set_seed, [c["seed"]])
    on(c["seed"].blur, studio.set_seed, [c["seed"]])
    on(c["resample"].click, studio.resample)
    on(c["use_text"].click, studio.edit_mask, [c["mask_text"]])
    on(c["generate"].click, studio.generate_many, [c["gen_label"], c["count"]])
    on(c["sweep_btn"].click, studio.sweep_view, [c["sweep_mode"]])


def uploaded(payload):
    """An image component's raw value (a FileData dict) -> a file path or bytes for biglearn.imaging; None if empty."""
    if not payload:
        return None
    if payload.get("path"):
        return payload["path"]
    url = payload.get("url") or ""
    if url.startswith("data:") and "," in url:  # some webcam/clipboard captures arrive inline
        return base64.b64decode(url.split(",", 1)[1])
    return None


def add_api(api: Api, digits: DigitsApi) -> None:
    """Named endpoints with their own (hidden) inputs and outputs; no session state is involved."""

    def endpoint(fn):
        @functools.wraps(fn)  # keeps the parameter names for the API page
        def call(*args):
            try:
                return fn(*args)
            except USER_ERRORS as exc:
                raise gr.Error(str(exc)) from None
        return call

    with gr.Column(visible=False):
        image = gr.File(label="image", type="filepath")
        image_b = gr.File(label="image_b", type="filepath")
        model = gr.Textbox("faces", label="model")
        mask = gr.Textbox("", label="mask")
        ratio = gr.Number(0.5, label="ratio")
        mode = gr.Textbox("random", label="mode")
        seed = gr.Number(0, precision=0, label="seed")
        count = gr.Number(8, precision=0, label="count")
        layout = gr.Textbox("left-right", label="layout")
        moves = gr.Textbox("", label="moves")
        copy = gr.Checkbox(False, label="copy")
        panels = [gr.Image(format="png", label=label) for label in ("masked", "generated", "completed")]
        message = gr.Textbox(label="message")
        gallery = gr.Gallery(format="png", label="samples")
        strip = gr.Image(format="png", label="strip")
        gif = gr.File(label="gif")
        sample = gr.Image(format="png", label="sample")
        label = gr.Textbox(NO_LABEL, label="label")
        temperature = gr.Number(1.0, label="temperature")
        order = gr.Textbox("random", label="order")
        probs = gr.Label(label="probabilities")
        digit_panels = [gr.Image(format="png", label=label) for label in ("masked", "completed")]
        endpoints = [
            ("complete", api.complete, [image, model, mask, ratio, mode, seed], [*panels, message]),
            ("samples", api.samples, [image, model, mask, ratio, mode, seed, count], [gallery, message]),
            ("sweep", api.sweep, [image, model, mode, seed], [strip, gif, message]),
            ("mix", api.mix, [image, image_b, model, layout, mask, ratio, mode, seed], [*panels, message]),
            ("relocate", api.relocate, [image, model, moves, copy, mask, ratio, mode, seed], [*panels, message]),
            ("generate", api.generate, [model, seed], [sample, message]),
            ("digits_classify", digits.classify_digit, [image], [probs, message]),
            ("digits_generate", digits.generate_digits, [label, count, temperature, seed, order], [gallery, message]),
            ("digits_complete", digits.complete_digit, [image, mask, ratio, mode, label, temperature, seed, order],
             [*digit_panels, probs, message]),
            ("digits_sweep", digits.sweep_digit, [image, mode, label, temperature, seed, order], [strip, message]),
        ]
        for name, fn, inputs, outputs in endpoints:
            gr.Button(visible=False).click(endpoint(fn), inputs, outputs, api_name=name)


def launch_options() -> dict:
    return dict(max_file_size=MAX_FILE_BYTES, ssr_mode=False, show_error=True)


def main() -> None:
    configure_threads()
    studio = Studio()
    digits = DigitsStudio(device=studio.cache.device)
    for cache in (studio.cache, digits.cache):  # load the models before the first visitor
        for name, report in cache.status().items():
            print(f"{name}: {report}", flush=True)
    build_demo(studio, digits).queue(default_concurrency_limit=2).launch(**launch_options())


if __name__ == "__main__":
    main()
