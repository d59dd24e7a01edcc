"""BigLearn Studio: the Gradio page. `python app.py`, then open http://127.0.0.1:7860.

Only the page's frame lives here: its two tabs, the session box and the API endpoints; each panel's layout and wiring
is in biglearn/app/page/, and what each control does in biglearn/app/ (plain Python, tested directly).
Environment: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (set on Spaces), BIGLEARN_CHECKPOINTS, BIGLEARN_HUB_REPO,
BIGLEARN_DEVICE (auto, cpu, cuda), HF_HUB_OFFLINE.
"""
from __future__ import annotations

import gradio as gr

from biglearn.app.api import Api
from biglearn.app.digits import DigitsApi, DigitsStudio
from biglearn.app.models import configure_threads
from biglearn.app.page.digits_tab import digits_tab_layout, wire_digits_tab
from biglearn.app.page.endpoints import add_api
from biglearn.app.page.image_cache import write_image_outputs_atomically
from biglearn.app.page.limits import refuse_url_fetches, server_limits
from biglearn.app.page.images_tab import images_tab_layout, wire_images_tab
from biglearn.app.page.session_box import session_state
from biglearn.app.session import Studio
from biglearn.imaging import MAX_FILE_BYTES

INTRO = """# BigLearn Studio
One generator completes **any** set of patches of an image from any other set (the BigLearn-GAN of *Big Learning*).
The image is cut into a grid of patches. **S** (source) are the patches you keep: the model sees them and copies
them through exactly. **T** (target) are the patches it generates, conditioned on S: a sample of
p(x<sub>T</sub> | x<sub>S</sub>). The **S-ratio** is the share of patches in S: 0 means S is empty, i.e. joint
generation of a whole new image; 0.9 leaves little to make up. Click patches on the grid to keep or generate them,
change the noise with *Resample*, and try pictures the model never saw."""


def build_demo(studio: Studio | None = None, digits: DigitsStudio | None = None) -> gr.Blocks:
    """The whole page: the intro, the two tabs and the hidden API endpoints."""
    studio = studio or Studio()
    digits = digits or DigitsStudio(device=studio.cache.device)
    write_image_outputs_atomically()  # concurrent identical outputs were served truncated (see image_cache)
    refuse_url_fetches()  # a file input given a URL made Gradio download it, unbounded (see limits)
    # Every 10 minutes, the uploads and returned files older than 30 minutes are deleted; all of them at exit.
    with gr.Blocks(title="BigLearn Studio", delete_cache=(600, 1800)) as demo:
        state = session_state()  # the "Complete images" tab's session box (the digits tab holds its own)
        gr.Markdown(INTRO)
        with gr.Tabs(elem_id="top-tabs"):
            with gr.Tab("Complete images", elem_id="tab-images"):
                images = images_tab_layout()
            with gr.Tab("Digits: classify & generate", elem_id="tab-digits") as digits_tab:
                digits_layout = digits_tab_layout()
        wire_images_tab(demo, state, images, studio)
        wire_digits_tab(digits_tab, digits_layout, digits)
        add_api(Api(studio), DigitsApi(digits.cache))
    return demo


def launch_options() -> dict:
    """`launch()`'s options, shared with the tests that launch the page in-process. Errors the visitor can act on
    are gr.Error / gr.Warning, shown whatever show_error says; any other exception's text (which may hold a server
    path) stays in the server's log."""
    return dict(max_file_size=MAX_FILE_BYTES, ssr_mode=False, show_error=False, **server_limits())


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
