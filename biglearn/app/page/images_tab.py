"""The "Complete images" tab: its panels in the order the page shows them, and the events of its session."""
from __future__ import annotations

import gradio as gr

from biglearn.app.page.endpoints import API_HELP
from biglearn.app.page.images_events import ImagesTabEvents
from biglearn.app.page.inputs import inputs_layout, wire_inputs
from biglearn.app.page.mask import mask_layout, wire_mask
from biglearn.app.page.mix import mix_layout, wire_mix
from biglearn.app.page.results import completion_panels, samples_layout, sweep_layout, wire_samples, wire_sweep
from biglearn.app.session import Studio


def images_tab_layout() -> dict:
    """The tab's components, by name (wired by `wire_images_tab`): three columns (input, mask, completion), then
    tabs for samples, the S-ratio sweep, mixing and the API."""
    c = {"status": gr.Markdown("Loading the model ...", elem_id="status")}
    with gr.Row():
        c.update(inputs_layout())
        c.update(mask_layout())
        c["panels"] = completion_panels()
    with gr.Tabs():
        c.update(samples_layout())
        c.update(sweep_layout())
        c.update(mix_layout())
        with gr.Tab("API"):
            gr.Markdown(API_HELP)
    return c


def wire_images_tab(demo: gr.Blocks, state: gr.State, c: dict, studio: Studio) -> None:
    """The tab's events, panel by panel in the page's order (the order of registration is visible to clients)."""
    events = ImagesTabEvents(state, c, studio)
    # Progress on the grid and status only, as for every other event: an overlay left on the Brush editor, open
    # while the page loads, was seen still "processing" two minutes on, its picture hidden (a browser test, CI load).
    demo.load(events.start, [state], events.outputs, api_visibility="private", show_progress_on=events.progress_on)
    wire_inputs(events, c, studio)
    wire_mask(events, c, studio)
    wire_samples(events, c, studio)
    wire_sweep(events, c, studio)
    wire_mix(events, c, studio)
