"""The page's named API endpoints for gradio_client (hidden components, no session state) and their help."""
from __future__ import annotations

import functools

import gradio as gr

from biglearn.app import masks as M
from biglearn.app.api import Api
from biglearn.app.digits import DEFAULT_GUIDANCE, DEFAULT_TEMPERATURE, MAX_TEMPERATURE, NO_LABEL, DigitsApi
from biglearn.multimodal.model import MAX_GUIDANCE
from biglearn.app.page.controls import uploaded
from biglearn.app.session import USER_ERRORS
from biglearn.imaging import MAX_FILE_BYTES

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
| `/digits_generate` | label, count, temperature, seed, order, guidance | gallery, message (label `any`: p(x, y)) |
| `/digits_complete` | image, mask, ratio, mode, label, temperature, seed, order, guidance | 2 panels, p(y \\| x_S), message |
| `/digits_sweep` | image, mode, label, temperature, seed, order, guidance | PNG strip, message |

*image*: any picture file (`handle_file(path)`), centre-cropped to the model's square. *model*: `faces` or
`digits`. *mask*: a grid string, {M.GRID_HELP}; when blank, *mode* (`random`, `raster`, `centre`, `border`, `all`,
`none`) at S-ratio *ratio* is used. *layout*: {", ".join(M.LAYOUTS)}; `paint` reads a map of `A`/`B`/`.` from
*mask*. *moves*: `row,col > row,col; ...` or raster indices `9 > 27`. Uploads are limited to
{MAX_FILE_BYTES // 2**20} MB. Digits endpoints (the multi-modal model, a 7x7 token grid): *label* `none` / `any` or
`0`-`9` (given to the model); *temperature* 0-{MAX_TEMPERATURE:g} (0: most likely tokens); *order* `random` or
`raster` (y first, then row by row); *guidance* 0-{MAX_GUIDANCE:g} (default {DEFAULT_GUIDANCE:g}; 0: none): once y is
known, each token is drawn from p(x_t | X, y) pushed away from p(x_t | X) by that weight (classifier-free guidance)."""


def add_api(api: Api, digits: DigitsApi) -> None:
    """Named endpoints with their own (hidden) inputs and outputs; no session state is involved."""

    def endpoint(fn, inputs):
        # Inputs arrive as sent (preprocess=False): the handlers check every value with the app's own messages, where
        # Gradio's preprocessing failed on NaN, infinities and huge numbers with a traceback; files go through the
        # same upload check as the page's own uploads.
        files = [component in (image, image_b) for component in inputs]

        @functools.wraps(fn)  # keeps the parameter names for the API page
        def call(*args):
            try:
                return fn(*(uploaded(a) if is_file else a for a, is_file in zip(args, files)))
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
        temperature = gr.Number(DEFAULT_TEMPERATURE, label="temperature")
        order = gr.Textbox("random", label="order")
        guidance = gr.Number(DEFAULT_GUIDANCE, label="guidance")
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
            ("digits_generate", digits.generate_digits, [label, count, temperature, seed, order, guidance],
             [gallery, message]),
            ("digits_complete", digits.complete_digit,
             [image, mask, ratio, mode, label, temperature, seed, order, guidance], [*digit_panels, probs, message]),
            ("digits_sweep", digits.sweep_digit, [image, mode, label, temperature, seed, order, guidance],
             [strip, message]),
        ]
        for name, fn, inputs, outputs in endpoints:
            gr.Button(visible=False).click(endpoint(fn, inputs), inputs, outputs, api_name=name, preprocess=False)
