"""The sliders' ranges and how their values arrive: the page builds its sliders from these ranges, and the handlers
clamp what they receive into them (for the faces/digits studio and the digits tab alike)."""
from __future__ import annotations

from biglearn.app.values import parse_number

RATIO_RANGE = (0.0, 0.9)   # S-ratio: at 1.0 nothing would be left to generate
ZOOM_RANGE = (1.0, 4.0)
SHIFT_RANGE = (-1.0, 1.0)  # the crop's left-right and up-down


def slider_value(value, bounds: tuple[float, float], what: str) -> float:
    """A slider's value as the app receives it, unchecked (Gradio's own check would turn a number typed beyond the
    range into an error on every output of the event), clamped into `bounds` as the slider itself then shows it."""
    number = parse_number(value, f"the {what}")  # NaN, infinities and long texts: the app's own message
    return min(max(number, bounds[0]), bounds[1])


def slider_updates(updates: dict, **sliders: tuple[float, float]) -> dict:
    """`updates` with each slider (name=(value given, value used)) written back only where it was clamped: written
    back during a drag, a slider would jump to where the pointer was when the event started."""
    shown = {name: value for name, value in updates.items() if name not in sliders}
    shown.update({name: used for name, (given, used) in sliders.items() if used != float(given)})
    return shown
