"""The mask column: the patch grid (click patches, or paint them in the Brush tab), the mask tools, the S-ratio, the
noise seed, and the mask as text."""
from __future__ import annotations

import gradio as gr

from biglearn.app import masks as M
from biglearn.app.page.controls import IMAGE_OUT, LIVE_SLIDER, RATIO_LABEL
from biglearn.app.page.editors import ImageEditor
from biglearn.app.page.images_events import ImagesTabEvents
from biglearn.app.page.session_box import SessionBox
from biglearn.app.session import CLICK_ACTIONS, Studio
from biglearn.app.sliders import RATIO_RANGE
from biglearn.app.values import parse_point


def mask_layout() -> dict:
    """The mask column's components, by name: the grid's two tabs, then the controls under them."""
    c: dict = {}
    with gr.Column(scale=4, min_width=340):
        with gr.Tabs():
            c.update(click_tab_layout())
            c.update(brush_tab_layout())
        c.update(mask_controls_layout())
    return c


def wire_mask(events: ImagesTabEvents, c: dict, studio: Studio) -> None:
    wire_click_tab(events, c, studio)
    wire_brush_tab(events, c, studio)
    wire_mask_controls(events, c, studio)


def click_tab_layout() -> dict:
    with gr.Tab("Click patches", elem_id="tab-click") as tab:
        return {
            "click_tab": tab,
            "grid": gr.Image(label="Patch grid: bright = kept (S), dim = generated (T)", elem_id="grid", **IMAGE_OUT),
            "action": gr.Radio(list(CLICK_ACTIONS), value="toggle", elem_id="click-action",
                               label="A click on a patch: toggles S/T, or picks it up and puts it down elsewhere "
                                     "(move / copy)"),
            "undo": gr.Button("Undo patch moves", size="sm", elem_id="undo-moves"),
        }


def wire_click_tab(events: ImagesTabEvents, c: dict, studio: Studio) -> None:
    def grid_click(box, click_action, evt: gr.SelectData):
        return events.run(lambda s: studio.click(s, *parse_point(evt.index), click_action), box)
    # One click at a time (concurrency_limit=1), each its own event (trigger_mode="multiple"): fast clicks all count
    c["grid"].select(grid_click, [events.state, c["action"]], events.outputs, api_visibility="private",
                     trigger_mode="multiple", concurrency_limit=1, show_progress="hidden")
    events.on(c["undo"].click, studio.undo_moves)


def brush_tab_layout() -> dict:
    with gr.Tab("Brush", elem_id="tab-brush") as tab:
        return {
            "brush_tab": tab,
            "brush": ImageEditor(
                type="numpy", image_mode="RGBA", format="png", canvas_size=(480, 480), fixed_canvas=True, sources=(),
                transforms=(), layers=False, height=520, elem_id="brush",
                brush=gr.Brush(default_size=28, colors=["#ff2d75"], color_mode="fixed"),
                eraser=gr.Eraser(default_size=28), label="Paint over patches"),
            "paint": gr.Radio(["kept", "generated"], value="kept", label="Painted patches become", elem_id="paint-as"),
            "apply_brush": gr.Button("Apply brush", variant="primary", elem_id="apply-brush"),
        }


def wire_brush_tab(events: ImagesTabEvents, c: dict, studio: Studio) -> None:
    def tab_shown(brush_open: bool):
        # Gradio selects the first tab by itself while the page loads. Before the load event has started the
        # session, the tab is noted for it to open with; starting a session here instead would put a "Problem"
        # warning in place of the page's own message when there is no model.
        def shown(box: SessionBox):
            with box.lock:
                if box.session is None:
                    box.brush_open = brush_open
                    return {events.state: box}  # (an empty dict would be read as one value)
            return events.run(lambda s: studio.show_brush(s, brush_open), box)
        return shown
    for tab, brush_open in ((c["brush_tab"], True), (c["click_tab"], False)):
        tab.select(tab_shown(brush_open), [events.state], events.outputs, api_visibility="private",
                   show_progress_on=events.progress_on)
    # The editor is redrawn in a follow-up event, not in the event that reads its strokes
    events.on(c["apply_brush"].click, studio.apply_brush, [c["brush"], c["paint"]]).then(
        lambda box: events.run(lambda s: studio.show_brush(s, True), box), [events.state], events.outputs,
        api_visibility="private", show_progress_on=events.progress_on)


def mask_controls_layout() -> dict:
    """The mask tools, S at an S-ratio, the seed, and the mask as text."""
    c: dict = {}
    with gr.Row():
        c["tools"] = {name: gr.Button(name, size="sm", min_width=60, elem_id=f"tool-{name}") for name in M.TOOLS}
    with gr.Row():
        c["ratio"] = gr.Slider(*RATIO_RANGE, value=0.5, step=0.05, label=RATIO_LABEL, elem_id="ratio")
        c["mode"] = gr.Radio(list(M.RATIO_MODES), value="random", label="S at that ratio", elem_id="mode")
    with gr.Row():
        c["seed"] = gr.Number(0, precision=0, label="Seed (noise)", elem_id="seed", min_width=100)
        c["resample"] = gr.Button("Resample", variant="primary", elem_id="resample")
    with gr.Accordion("Mask as text", open=False):
        c["mask_text"] = gr.Textbox(lines=8, max_lines=16, label=M.GRID_HELP, elem_id="mask-text")
        c["use_text"] = gr.Button("Use this mask", size="sm", elem_id="use-mask-text")
    return c


def wire_mask_controls(events: ImagesTabEvents, c: dict, studio: Studio) -> None:
    for name, button in c["tools"].items():
        events.on(button.click, lambda s, name=name: studio.tool(s, name))
    events.on(c["ratio"].change, studio.set_ratio, [c["ratio"], c["mode"]], **LIVE_SLIDER)
    events.on(c["mode"].input, studio.set_ratio, [c["ratio"], c["mode"]])
    events.on(c["seed"].submit, studio.set_seed, [c["seed"]])
    events.on(c["seed"].blur, studio.set_seed, [c["seed"]])  # a seed typed, then a button pressed: the button uses it
    events.on(c["resample"].click, studio.resample)
    events.on(c["use_text"].click, studio.edit_mask, [c["mask_text"]])
