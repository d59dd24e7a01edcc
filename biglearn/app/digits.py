"""The "Digits: classify & generate" tab: the multi-modal MNIST model (issue 6) behind plain-Python handlers.

Like biglearn.app.session, every handler takes a `DigitsSession` and control values and returns the new session
and a dict of named updates; `biglearn/app/page/digits_tab.py` maps the names to components. `DigitsApi` holds the
same capabilities as stateless endpoints for gradio_client. Problems the user can fix raise ValueError / ImageError /
ModelUnavailable.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from biglearn.app import masks as M
from biglearn.app import ops, render
from biglearn.app.models import MULTIMODAL_MODELS, ModelCache, gpu
from biglearn.app.pictures import list_examples
from biglearn.app.sliders import RATIO_RANGE, slider_updates, slider_value
from biglearn.app.values import check_text, parse_count, parse_number, parse_seed, short
from biglearn.imaging import load_image, to_model_image
from biglearn.multimodal.config import IMAGE_SIZE, NUM_LABELS
from biglearn.multimodal.model import MAX_GUIDANCE, SAMPLING_ORDERS, DigitsModel
from biglearn.sheets import SHEET_RATIOS

MODEL = "multimodal"
NO_LABEL = "none"
ANY_LABEL = "any"
LABEL_CHOICES = [NO_LABEL] + [str(d) for d in range(NUM_LABELS)]
GENERATE_CHOICES = [ANY_LABEL] + [str(d) for d in range(NUM_LABELS)]
MAX_COUNT = 32
MAX_TEMPERATURE = 2.0
DEFAULT_TEMPERATURE = 1.0   # the page's slider, a new session and an API call without one start here
# Classifier-free guidance weight, default likewise: on the shipped model it lifts label-conditioned agreement at
# temperature 1 from 0.91 to 0.996 (checkpoints/digits-multimodal/README.md) for twice the transformer's rows.
DEFAULT_GUIDANCE = 1.0


def parse_label(choice, allowed_blank: tuple[str, ...] = (NO_LABEL, ANY_LABEL, "")) -> int | None:
    """'none' / 'any' / '' -> None; '0'..'9' -> the digit; anything else is a clear error."""
    text = "" if choice is None else str(choice).strip().lower()
    if text in allowed_blank:
        return None
    if text in LABEL_CHOICES[1:]:  # the ASCII digits only: '²'.isdigit() is true too
        return int(text)
    raise ValueError(f"the label must be a digit 0-9 or '{NO_LABEL}', not {short(choice)}")


def parse_temperature(value) -> float:
    temperature = parse_number(DEFAULT_TEMPERATURE if value is None else value, "the temperature")
    if not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise ValueError(f"the temperature must be between 0 and {MAX_TEMPERATURE:g}, got {temperature:g}")
    return temperature


def parse_guidance(value) -> float:
    guidance = parse_number(DEFAULT_GUIDANCE if value is None else value, "the guidance")
    if not 0.0 <= guidance <= MAX_GUIDANCE:
        raise ValueError(f"the guidance must be between 0 and {MAX_GUIDANCE:g}, got {guidance:g}")
    return guidance


def parse_order(order) -> str:
    text = (check_text(order, "the sampling order") or "random").strip().lower()
    if text not in SAMPLING_ORDERS:
        raise ValueError(f"the sampling order must be one of {', '.join(SAMPLING_ORDERS)}, not {order!r}")
    return text


def parse_sampling(temperature, order, guidance) -> Sampling:
    """An API call's sampling values (None = the default) -> Sampling, or a clear ValueError."""
    return Sampling(parse_temperature(temperature), parse_order(order), parse_guidance(guidance))


def digit_input(picture) -> np.ndarray:
    """Any picture (path, bytes, PIL image, array; a drawing) -> an MNIST-like [28, 28, 1] uint8 digit."""
    digit = to_model_image(load_image(picture), IMAGE_SIZE, 1, digit=True, fit_digit=True)
    if digit.max() == 0:
        raise ValueError("no digit found in the picture: draw or upload a digit (dark ink on light paper, or light "
                         "on dark)")
    return digit


def drawing(editor_value) -> np.ndarray | None:
    """A Sketchpad value ({'composite': RGBA array, ...}) -> the RGBA drawing, or None when nothing was drawn."""
    if not editor_value:
        return None
    composite = editor_value.get("composite") if isinstance(editor_value, dict) else editor_value
    if composite is None:
        return None
    array = np.asarray(composite)
    if array.ndim == 3 and array.shape[-1] == 4 and not array[..., 3].any():
        return None
    return array


def as_batch(image: np.ndarray) -> torch.Tensor:
    return ops.to_batch([image])


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """[1, 28, 28] float in [0, 1] -> [28, 28, 1] uint8."""
    return ops.to_arrays(tensor[None])[0]


def example_digit(path) -> np.ndarray:
    """A built-in MNIST example as it is (already framed like MNIST)."""
    return to_model_image(load_image(path), IMAGE_SIZE, 1, digit=True)


def label_dict(probs: torch.Tensor) -> dict[str, float]:
    return {str(d): float(p) for d, p in enumerate(probs.tolist())}


def describe(keep: np.ndarray, label: int | None) -> str:
    kept = int(keep.sum())
    given = f" and the label {label}" if label is not None else ""
    if kept == 0:
        what = "p(x | y): a new digit of the label" if label is not None else "p(x, y): a new digit and its label"
        return f"No token kept{given}: {what}."
    return f"{kept} of {keep.size} tokens kept (S-ratio {kept / keep.size:.2f}){given}."


@dataclass(frozen=True)
class Sampling:
    """How tokens are drawn, all chosen at sampling time: DigitsModel.fill's keywords."""
    temperature: float = DEFAULT_TEMPERATURE
    order: str = "random"             # of the targets: "random", or "raster" (y first)
    guidance: float = DEFAULT_GUIDANCE

    def describe(self) -> str:
        return f"temperature {self.temperature:g}, guidance {self.guidance:g}, {self.order} order"


@dataclass
class DigitsSession:
    image: np.ndarray | None = None   # [28, 28, 1] uint8
    keep: np.ndarray | None = None    # [7, 7] bool, True = kept image token (S)
    label: int | None = None          # the label given as a source, or None
    temperature: float = DEFAULT_TEMPERATURE
    order: str = "random"             # sampling order of the targets: "random", or "raster" (y first)
    guidance: float = DEFAULT_GUIDANCE
    seed: int = 0
    ratio: float = 0.5
    mode: str = "random"
    mask_order: int = 0               # seeds the random order in which tokens join S (see set_ratio)
    source: str = "none"

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.temperature, self.order, self.guidance)


class DigitsCapabilities:
    """What both the tab and the API do with the model, on plain arrays."""

    def __init__(self, cache: ModelCache | None = None, device: str | None = None):
        self.cache = cache or ModelCache(device, MULTIMODAL_MODELS, DigitsModel.from_pretrained)

    def model(self) -> DigitsModel:
        return self.cache.get(MODEL)

    @gpu  # ZeroGPU: CUDA exists only inside; elsewhere the identity, as for biglearn.app.ops
    def classify(self, image: np.ndarray) -> torch.Tensor:
        return self.model().classify(as_batch(image))[0]

    @gpu
    def complete(self, image: np.ndarray, keep: np.ndarray, label: int | None, seed: int, sampling: Sampling
                 ) -> tuple[np.ndarray, int, torch.Tensor]:
        """-> (completion [28, 28, 1], its label (given or sampled), p(y | x_S) [10])."""
        model = self.model()
        x = as_batch(image)
        keep_tensor = torch.from_numpy(keep)
        done, labels = model.complete(x, keep_tensor, labels=label, seed=seed, **asdict(sampling))
        probs = model.label_probs(model.encode(x), keep_tensor.flatten()[None])[0]
        return to_image(done[0]), int(labels[0]), probs

    @gpu
    def generate(self, label: int | None, count: int, seed: int, sampling: Sampling) -> list[tuple[np.ndarray, str]]:
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(f"ask for 1 to {MAX_COUNT} digits, not {count}")
        images, labels = self.model().generate(count, labels=label, seed=seed, **asdict(sampling))
        how = "given" if label is not None else "sampled"
        return [(render.enlarge(to_image(img), 112), f"y = {int(y)} ({how})") for img, y in zip(images, labels)]

    @gpu
    def sweep(self, image: np.ndarray, mode: str, label: int | None, seed: int, sampling: Sampling) -> np.ndarray:
        """Completions with S-ratio 0.0 ... 0.9 of the same noise, then the input, captioned, side by side."""
        if mode not in M.RATIO_MODES:
            raise ValueError(f"the sweep mode must be one of {', '.join(M.RATIO_MODES)}, not {short(mode)}")
        model = self.model()
        keeps = np.stack([M.tool_mask(mode, model.grid, ratio=ratio, seed=seed * 1000 + i)
                          for i, ratio in enumerate(SHEET_RATIOS)])
        # One batched call: with the key/value cache ten rows cost about what one does.
        done, _ = model.complete(as_batch(image).expand(len(keeps), -1, -1, -1), torch.from_numpy(keeps),
                                 labels=label, seed=seed, **asdict(sampling))
        frames = [render.labelled(to_image(column), f"r={ratio:.1f}") for column, ratio in zip(done, SHEET_RATIOS)]
        frames.append(render.labelled(image, "input"))
        return np.concatenate(frames, axis=1)


class DigitsStudio(DigitsCapabilities):
    """The tab's handlers (one per process, shared by all sessions)."""

    def view(self, s: DigitsSession, note: str = "") -> dict:
        completed, label, source_probs = self.complete(s.image, s.keep, s.label, s.seed, s.sampling)
        given = "given" if s.label is not None else "sampled"
        status = f"{describe(s.keep, s.label)} Completion labelled y = {label} ({given}); seed {s.seed}, " \
                 f"{s.sampling.describe()}."
        return {
            "grid": render.grid_view(s.image, s.keep),
            "mask_text": M.format_grid(s.keep),
            "panels": [render.enlarge(render.grey_out(s.image, s.keep)), render.enlarge(completed)],
            "classify": label_dict(self.classify(s.image)),
            "source_probs": label_dict(source_probs),
            "seed": s.seed,
            "status": " ".join(part for part in (note, status) if part),
        }

    def controls(self, s: DigitsSession) -> dict:
        return {"label": NO_LABEL if s.label is None else str(s.label), "temperature": s.temperature,
                "guidance": s.guidance, "order": s.order, "ratio": s.ratio, "mode": s.mode}

    def start(self) -> tuple[DigitsSession, dict]:
        model = self.model()
        s = DigitsSession(keep=M.tool_mask("random", model.grid, ratio=0.5, seed=0))
        examples = list_examples("digits")
        if examples:
            image, source = example_digit(examples[0]), "example"
        else:
            image, source = self._sampled_digit(0), "generated"
        s = replace(s, image=image, source=source)
        return s, {**self.view(s), **self.controls(s)}

    def _sampled_digit(self, seed: int) -> np.ndarray:
        images, _ = self.model().generate(1, seed=seed)
        return to_image(images[0])

    # ------------------------------------------------------------ inputs
    def use_example(self, s: DigitsSession, index: int) -> tuple[DigitsSession, dict]:
        examples = list_examples("digits")
        if not 0 <= index < len(examples):
            raise ValueError(f"there is no digit example number {index}")
        image = example_digit(examples[index])
        s = replace(s, image=image, source="example")
        return s, self.input_view(s, f"Example: {examples[index].name}.")

    def upload(self, s: DigitsSession, picture) -> tuple[DigitsSession, dict]:
        if picture is None:
            return s, {}
        s = replace(s, image=digit_input(picture), source="upload")
        return s, self.input_view(s, "Using your picture, re-framed like an MNIST digit.")

    def use_drawing(self, s: DigitsSession, editor_value) -> tuple[DigitsSession, dict]:
        picture = drawing(editor_value)
        if picture is None:
            raise ValueError("the drawing is empty: draw a digit on the pad first")
        s = replace(s, image=digit_input(picture), source="drawing")
        return s, self.input_view(s, "Using your drawing.")

    def new_digit(self, s: DigitsSession) -> tuple[DigitsSession, dict]:
        seed = random.randrange(2**31)
        s = replace(s, image=self._sampled_digit(seed), source="generated")
        return s, self.input_view(s, f"A new digit sampled from p(x, y) (seed {seed}).")

    def input_view(self, s: DigitsSession, note: str) -> dict:
        """After a new input: the views, and no sweep of the old input left on show."""
        return {**self.view(s, note), "sweep": None}

    # ------------------------------------------------------------ mask, label, noise
    def click(self, s: DigitsSession, x: float, y: float) -> tuple[DigitsSession, dict]:
        grid = s.keep.shape[0]
        row, col = M.cell_at(x, y, grid, render.GRID_SIDE // grid * grid)
        s = replace(s, keep=M.toggled(s.keep, row, col))
        return s, self.view(s, f"Token ({row}, {col}) is now {'kept (S)' if s.keep[row, col] else 'generated (T)'}.")

    def tool(self, s: DigitsSession, name: str) -> tuple[DigitsSession, dict]:
        """A mask tool; "random" also draws a new order of the tokens for the S-ratio slider."""
        if name == "random":
            s = replace(s, mask_order=random.randrange(2**31))
        s = replace(s, keep=M.tool_mask(name, s.keep.shape[0], ratio=s.ratio, seed=s.mask_order, current=s.keep))
        return s, self.view(s)

    def set_ratio(self, s: DigitsSession, ratio, mode: str) -> tuple[DigitsSession, dict]:
        """As the faces tab's: random S keeps the session's order of tokens, so S grows and shrinks with the slider."""
        if mode not in M.RATIO_MODES:
            raise ValueError(f"the mode must be one of {', '.join(M.RATIO_MODES)}, not {mode!r}")
        used = slider_value(ratio, RATIO_RANGE, "S-ratio")
        if (used, mode) == (s.ratio, s.mode):  # the slider echoing a value the app set: S stays as the user left it
            return s, slider_updates({}, ratio=(ratio, used))
        s = replace(s, ratio=used, mode=mode, keep=M.tool_mask(mode, s.keep.shape[0], ratio=used, seed=s.mask_order))
        return s, slider_updates(self.view(s), ratio=(ratio, used))

    def edit_mask(self, s: DigitsSession, text: str) -> tuple[DigitsSession, dict]:
        s = replace(s, keep=M.parse_grid(text, s.keep.shape[0]))
        return s, self.view(s, "Mask taken from the text.")

    def set_label(self, s: DigitsSession, choice) -> tuple[DigitsSession, dict]:
        s = replace(s, label=parse_label(choice))
        return s, self.view(s)

    def set_temperature(self, s: DigitsSession, value) -> tuple[DigitsSession, dict]:
        return self._set_sampling_slider(s, "temperature", value, MAX_TEMPERATURE)

    def set_guidance(self, s: DigitsSession, value) -> tuple[DigitsSession, dict]:
        return self._set_sampling_slider(s, "guidance", value, MAX_GUIDANCE)

    def _set_sampling_slider(self, s: DigitsSession, name: str, value, maximum: float
                             ) -> tuple[DigitsSession, dict]:
        """A slider in [0, maximum] of the session field `name`; an unchanged value recomputes nothing."""
        used = slider_value(value, (0.0, maximum), name)
        if used == getattr(s, name):
            return s, slider_updates({}, **{name: (value, used)})
        s = replace(s, **{name: used})
        return s, slider_updates(self.view(s), **{name: (value, used)})

    def set_order(self, s: DigitsSession, order) -> tuple[DigitsSession, dict]:
        s = replace(s, order=parse_order(order))
        return s, self.view(s)

    def set_seed(self, s: DigitsSession, seed) -> tuple[DigitsSession, dict]:
        seed = parse_seed(seed)
        if seed == s.seed:  # e.g. the seed box losing focus unchanged
            return s, {}
        s = replace(s, seed=seed)
        return s, self.view(s)

    def resample(self, s: DigitsSession) -> tuple[DigitsSession, dict]:
        s = replace(s, seed=random.randrange(2**31))
        return s, self.view(s, "New noise.")

    # ------------------------------------------------------------ galleries
    def generate_many(self, s: DigitsSession, choice, count) -> tuple[DigitsSession, dict]:
        label = parse_label(choice)
        gallery = self.generate(label, parse_count(count, "count", 1, MAX_COUNT), s.seed, s.sampling)
        what = f"p(x | y = {label})" if label is not None else "p(x, y)"
        return s, {"gallery": gallery, "status": f"{len(gallery)} samples of {what}, seed {s.seed}, "
                                                 f"{s.sampling.describe()}."}

    def sweep_view(self, s: DigitsSession, mode: str) -> tuple[DigitsSession, dict]:
        strip = self.sweep(s.image, mode, s.label, s.seed, s.sampling)
        return s, {"sweep": strip, "status": f"S-ratio sweep, {mode} S, seed {s.seed}."}


class DigitsApi(DigitsCapabilities):
    """Stateless named endpoints (image: any picture file; label: 'none'/'any' or a digit)."""

    def classify_digit(self, image) -> tuple[dict, str]:
        if image is None:
            raise ValueError("an input image is required")
        probs = self.classify(digit_input(image))
        return label_dict(probs), f"p(y | x): most likely {int(probs.argmax())} ({float(probs.max()):.3f})."

    def generate_digits(self, label, count, temperature, seed, order="random", guidance=None) -> tuple[list, str]:
        count = parse_count(1 if count is None else count, "count", 1, MAX_COUNT)
        gallery = self.generate(parse_label(label), count, parse_seed(seed),
                                parse_sampling(temperature, order, guidance))
        return gallery, f"{len(gallery)} samples."

    def complete_digit(self, image, mask, ratio, mode, label, temperature, seed, order="random", guidance=None
                       ) -> tuple:
        if image is None:
            raise ValueError("an input image is required")
        seed, label = parse_seed(seed), parse_label(label)
        sampling = parse_sampling(temperature, order, guidance)
        digit = digit_input(image)
        keep = M.requested_mask(mask, ratio, mode, seed, self.model().grid)
        done, y, probs = self.complete(digit, keep, label, seed, sampling)
        return (render.enlarge(render.grey_out(digit, keep)), render.enlarge(done), label_dict(probs),
                f"{describe(keep, label)} Completion labelled y = {y}. Mask:\n{M.format_grid(keep)}")

    def sweep_digit(self, image, mode, label, temperature, seed, order="random", guidance=None
                    ) -> tuple[np.ndarray, str]:
        if image is None:
            raise ValueError("an input image is required")
        mode = (check_text(mode, "the sweep mode") or "random").strip().lower()
        strip = self.sweep(digit_input(image), mode, parse_label(label), parse_seed(seed),
                           parse_sampling(temperature, order, guidance))
        return strip, f"S-ratio sweep, {mode} S."
