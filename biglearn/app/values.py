"""Plain values from a form or an API call, checked: any HTTP client can send any JSON (NaN, 1e999, a 5,000-digit
number, a megabyte of text), and each gets the app's own message instead of Python's."""
from __future__ import annotations

import math
import re

MAX_NUMBER_CHARS = 40    # longer than any number a control or a sensible client sends
MAX_TEXT_CHARS = 8192    # mask grids, mix maps and move lists (a 15x15 grid string is 240 characters)
_INTEGER = re.compile(r"[+-]?\d+")


def parse_number(value, what: str, kind: str = "number") -> float:
    """A finite number; ValueError naming `what` (a `kind` of number) for anything else, NaN and infinities included."""
    if isinstance(value, bool) or (isinstance(value, str) and len(value) > MAX_NUMBER_CHARS):
        raise ValueError(f"{what} must be a {kind}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what} must be a {kind}, not {short(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite {kind}, not {short(value)}")
    return number


def parse_whole(value, what: str) -> int:
    """A whole number (an int, an integral float, or their text); ValueError naming `what` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and len(value) <= MAX_NUMBER_CHARS and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())  # exact, where a float would round a long one
    number = parse_number(value, what, "whole number")
    if number != int(number):
        raise ValueError(f"{what} must be a whole number, not {short(value)}")
    return int(number)


def parse_count(value, what: str, low: int, high: int) -> int:
    """A whole number in [low, high]; ValueError otherwise (never clamped silently)."""
    count = parse_whole(value, what)
    if not low <= count <= high:
        raise ValueError(f"{what} must be between {low} and {high}, got {short(count)}")
    return count


def parse_point(index) -> tuple[float, float]:
    """A click's position on a picture (gr.SelectData.index, [x, y], as sent by the client); ValueError otherwise."""
    if not isinstance(index, (list, tuple)) or len(index) != 2:
        raise ValueError(f"a click must be at a point [x, y], not {short(index)}")
    return parse_number(index[0], "the click's x"), parse_number(index[1], "the click's y")


def parse_seed(seed) -> int:
    """A seed: blank means 0; taken modulo 2**31."""
    return parse_whole(0 if seed is None or seed == "" else seed, "the seed") % 2**31


def check_text(text, what: str) -> str:
    """A text argument ('' for None), refused when over MAX_TEXT_CHARS or not text at all."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"{what} is {len(text):,} characters long; the limit is {MAX_TEXT_CHARS:,}")
    return text


def short(value, limit: int = 24) -> str:
    """repr(value), cut to `limit` characters, for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
