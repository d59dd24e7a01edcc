"""The page's drawing components (the brush editor, the digits pad) with the bounds Gradio 6.31 leaves out.

Any client can send an editor value, and Gradio decodes every image in it in full before the handler sees it (its
decompression-bomb warning silenced): a 13,000 x 13,000 one-bit PNG of a few kilobytes becomes a 676 MB array, once
per layer, as many layers as the client lists. Its blob store (`accept_blobs`, the route the editor streams its
layers through) grows a list to whatever index a client names and keeps every id until an event uses it. So:
- each image of a value is read lazily (its header) and refused unless it is at most twice the canvas on each side
  (the canvas exports at its own size; twice leaves room for a high-density screen), before any decoding, and only
  the first MAX_LAYERS layers are read;
- a blob must be one of MAX_LAYERS layers, the background or the composite, at most MAX_BLOB_BYTES, and the store
  keeps the MAX_STORED_VALUES most recent values only.
"""
from __future__ import annotations

import warnings
from io import BytesIO

import gradio as gr
from gradio.components.base import server
from gradio.components.image_editor import AcceptBlobs
from PIL import Image

from biglearn.app.page.controls import uploaded

MAX_LAYERS = 2           # the page's editors have one drawing layer (layers=False); one more for slack
MAX_BLOB_BYTES = 4 * 2**20
MAX_STORED_VALUES = 64   # values streamed but not yet used by an event, over all sessions
BLOB_KINDS = ("layer", "background", "composite")
REFUSED = "this drawing cannot be read; please draw again"


class BoundedEditor:
    """Mixin for gr.ImageEditor and its subclasses; see the module's docstring."""

    def preprocess(self, payload):
        if payload is not None and getattr(payload, "layers", None):
            payload.layers = payload.layers[:MAX_LAYERS]
        return super().preprocess(payload)

    def convert_and_format_image(self, file, flatten_on_white: bool = False):
        if file is None:
            return None
        if isinstance(file, (bytes, bytearray, memoryview)):
            source = BytesIO(file)
        else:  # a FileData: Gradio moved it into its upload folder; checked again, as the app's uploads are
            try:
                source = uploaded({"path": file.path})
            except ValueError:
                raise gr.Error(REFUSED) from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
                with Image.open(source, formats=["PNG"]) as header:  # reads the header only
                    width, height = header.size
        except (OSError, ValueError, Image.DecompressionBombError):
            raise gr.Error(REFUSED) from None
        canvas_width, canvas_height = self.canvas_size
        if width > 2 * canvas_width or height > 2 * canvas_height:
            raise gr.Error(f"this drawing is {width} x {height} pixels; the canvas is {canvas_width} x "
                           f"{canvas_height}")
        return super().convert_and_format_image(file, flatten_on_white)

    @server
    def accept_blobs(self, data: AcceptBlobs):
        kind, index, files = data.data.get("type"), data.data.get("index"), data.files
        layer = kind == "layer" and str(index).isdigit() and int(index) < MAX_LAYERS
        if not (layer or kind in BLOB_KINDS[1:]) or len(files) != 1 or len(files[0][1]) > MAX_BLOB_BYTES:
            raise gr.Error(REFUSED)
        if kind != "layer":
            data.data["index"] = None
        while len(self.blob_storage) >= MAX_STORED_VALUES and data.data.get("id") not in self.blob_storage:
            self.blob_storage.pop(next(iter(self.blob_storage)))  # the oldest value (dicts keep insertion order)
        return super().accept_blobs(data)


class ImageEditor(BoundedEditor, gr.ImageEditor):
    """gr.ImageEditor with the bounds above (the page's sketchpad too: gr.Sketchpad is this with no sources, and a
    subclass of that template would be drawn by a front-end component named after the mixin)."""
