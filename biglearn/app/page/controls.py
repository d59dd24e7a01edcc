"""Settings and helpers that the page's panels share."""
from __future__ import annotations

from gradio.utils import get_upload_folder

from biglearn.app.uploads import uploaded as checked_upload

IMAGE_OUT = dict(format="png", interactive=False, buttons=["download", "fullscreen"])
# Sliders apply as they move, on `change`: dragging, arrow keys, typed numbers and the page's clamping of a number
# typed beyond the range all fire it (`release` misses all but dragging; `input` misses the clamping, leaving the
# slider and the session apart). `change` also echoes values the app sets: the handlers ignore unchanged values. A
# slow update skips the values dragged past meanwhile; values arrive unchecked and the handlers clamp them (Gradio's
# own check would mark every output failed); no progress overlay flickers.
LIVE_SLIDER = dict(trigger_mode="always_last", preprocess=False, show_progress="hidden")
RATIO_LABEL = "S-ratio (random S adds patches in one order as it rises; the random tool shuffles the order)"


def uploaded(payload):
    """An image component's raw value -> what biglearn.imaging reads: a file inside this server's upload folder, or
    the bytes of an inline capture; None when empty. Anything else (any client can send any path) is refused with one
    neutral message: see biglearn.app.uploads."""
    return checked_upload(payload, get_upload_folder())
