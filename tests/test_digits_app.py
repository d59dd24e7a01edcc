"""The "Digits: classify & generate" tab's handlers, called directly (as the page calls them)."""
from __future__ import annotations

import numpy as np
import pytest
from studio_fixtures import ROOT, app_checkpoints  # noqa: F401  (fixture)

from biglearn.app.digits import DEFAULT_GUIDANCE, MAX_TEMPERATURE, DigitsApi, DigitsSession, DigitsStudio, drawing
from biglearn.multimodal.model import MAX_GUIDANCE
from biglearn.app.models import MULTIMODAL_MODELS, ModelCache, ModelUnavailable
from biglearn.imaging import ImageError
from biglearn.multimodal.model import DigitsModel

DIGIT = ROOT / "examples" / "digits" / "mnist-test-0000-label7.png"


@pytest.fixture(scope="module")
def studio(app_checkpoints):  # noqa: F811
    return DigitsStudio(ModelCache("cpu", MULTIMODAL_MODELS, DigitsModel.from_pretrained))


@pytest.fixture(scope="module")
def started(studio) -> tuple[DigitsSession, dict]:
    return studio.start()


def test_start_shows_every_view(started):
    s, view = started
    assert s.image.shape == (28, 28, 1) and s.image.dtype == np.uint8 and s.source == "example"
    assert s.keep.shape == (7, 7) and 0 < s.keep.sum() < 49
    assert view["grid"].shape[0] >= 7 * 60 and len(view["panels"]) == 2
    for key in ("classify", "source_probs"):
        assert set(view[key]) == {str(d) for d in range(10)}
        assert sum(view[key].values()) == pytest.approx(1.0, abs=1e-5)
    assert "tokens kept" in view["status"] and view["label"] == "none"


def test_clicks_toggle_tokens_and_keep_source_pixels(studio, started):
    s, _ = started
    cell = 480 // 7
    s2, view = studio.click(s, 2.5 * cell, 1.5 * cell)                     # x -> column 2, y -> row 1
    assert s2.keep[1, 2] != s.keep[1, 2] and (s2.keep.sum() - s.keep.sum()) in (-1, 1)
    assert "Token (1, 2)" in view["status"]
    masked, completed = view["panels"]
    factor = completed.shape[0] // 28
    kept = np.kron(s2.keep, np.ones((4 * factor, 4 * factor), dtype=bool))
    original = np.repeat(np.repeat(s2.image[..., 0], factor, 0), factor, 1)
    assert (completed[..., 0][kept] == original[kept]).all()               # x_S comes back exactly


def test_label_temperature_and_seed(studio, started):
    s, _ = started
    s, view = studio.tool(s, "none")
    s, view = studio.set_label(s, "4")
    assert s.label == 4 and "Completion labelled y = 4 (given)" in view["status"]
    assert studio.set_seed(s, s.seed) == (s, {})                            # an unchanged seed recomputes nothing
    again = studio.view(s)
    assert (again["panels"][1] == view["panels"][1]).all()                   # same seed, same digit
    s, view = studio.set_temperature(s, 0)
    assert s.temperature == 0 and "temperature" not in view
    hot, view = studio.set_temperature(s, 5)  # typed beyond the slider: clamped, and the slider shows it
    assert hot.temperature == view["temperature"] == MAX_TEMPERATURE
    with pytest.raises(ValueError, match="temperature must be a number"):
        studio.set_temperature(s, "hot")
    with pytest.raises(ValueError, match="digit 0-9"):
        studio.set_label(s, "11")
    s, view = studio.set_label(s, "none")
    assert s.label is None and "sampled" in view["status"]
    s, view = studio.set_order(s, "raster")
    assert s.order == "raster" and "raster order" in view["status"]
    with pytest.raises(ValueError, match="sampling order"):
        studio.set_order(s, "spiral")


def test_guidance_is_a_session_setting_with_the_sliders_bounds(studio, started):
    s, view = started
    assert s.guidance == DEFAULT_GUIDANCE and f"guidance {DEFAULT_GUIDANCE:g}" in view["status"]
    s, _ = studio.set_label(s, "3")
    off, view = studio.set_guidance(s, 0)
    assert off.guidance == 0 and "guidance 0," in view["status"]
    assert studio.set_guidance(off, 0)[1] == {}                          # the slider echoing: nothing recomputed
    strong, view = studio.set_guidance(s, 1e6)                           # typed beyond the slider: clamped
    assert strong.guidance == view["guidance"] == MAX_GUIDANCE
    with pytest.raises(ValueError, match="guidance must be a number"):
        studio.set_guidance(s, "lots")
    # the gallery follows the session's guidance: other weights, other digits from the same seed
    _, plain = studio.generate_many(off, "3", 4)
    _, guided = studio.generate_many(s, "3", 4)
    assert f"guidance {DEFAULT_GUIDANCE:g}" in guided["status"]
    assert any((a[0] != b[0]).any() for a, b in zip(plain["gallery"], guided["gallery"]))


def test_generate_gallery_and_sweep(studio, started):
    s, _ = started
    _, out = studio.generate_many(s, "3", 6)
    assert len(out["gallery"]) == 6 and all(caption == "y = 3 (given)" for _, caption in out["gallery"])
    _, out = studio.generate_many(s, "any", 4)
    assert all(caption.endswith("(sampled)") for _, caption in out["gallery"])
    with pytest.raises(ValueError, match="between 1 and 32"):
        studio.generate_many(s, "any", 100)
    _, out = studio.sweep_view(s, "raster")
    frame = out["sweep"].shape[0] - 18                                       # each frame has an 18 px caption
    assert out["sweep"].shape == (frame + 18, 11 * frame, 3) and frame % 28 == 0


def test_inputs_upload_drawing_examples(studio, started, tmp_path):
    s, _ = started
    s, view = studio.upload(s, str(DIGIT))
    assert s.source == "upload" and s.image.max() > 0
    pad = np.zeros((280, 280, 4), dtype=np.uint8)
    assert drawing({"composite": pad}) is None
    with pytest.raises(ValueError, match="drawing is empty"):
        studio.use_drawing(s, {"composite": pad, "layers": [], "background": None})
    pad[60:220, 130:150] = (0, 0, 0, 255)                                     # a "1"
    s, view = studio.use_drawing(s, {"composite": pad})
    assert s.source == "drawing" and s.image[..., 0].max() == 255
    s, view = studio.use_example(s, 2)
    assert s.source == "example" and view["sweep"] is None  # no sweep of the old input left on show
    with pytest.raises(ValueError, match="no digit example"):
        studio.use_example(s, 999)
    corrupt = tmp_path / "bad.png"
    corrupt.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageError):
        studio.upload(s, str(corrupt))
    blank = tmp_path / "blank.png"
    from PIL import Image
    Image.new("L", (50, 50), 255).save(blank)
    with pytest.raises(ValueError, match="no digit found"):
        studio.upload(s, str(blank))


def test_mask_text_and_tools(studio, started):
    s, _ = started
    s, view = studio.edit_mask(s, "#######\n" * 3 + ".......\n" * 4)
    assert s.keep[:3].all() and not s.keep[3:].any()
    with pytest.raises(ValueError):
        studio.edit_mask(s, "###")
    for name in ("all", "none", "invert", "random", "raster", "centre", "border"):
        s, view = studio.tool(s, name)
    s, view = studio.set_ratio(s, 0.8, "raster")
    assert s.keep.sum() == round(0.8 * 49)
    low, high = (studio.set_ratio(s, r, "random")[0].keep for r in (0.3, 0.6))  # one order of the tokens: nested
    assert low.sum() == round(0.3 * 49) and not (low & ~high).any()
    s, view = studio.set_ratio(s, 1.0, "random")
    assert s.ratio == view["ratio"] == 0.9


def test_api_functions(studio):
    api = DigitsApi(studio.cache)
    probs, message = api.classify_digit(str(DIGIT))
    assert set(probs) == {str(d) for d in range(10)} and "most likely" in message
    masked, completed, source_probs, message = api.complete_digit(str(DIGIT), "", 0.5, "raster", "7", 1.0, 3)
    assert masked.shape == completed.shape and "the label 7" in message
    with pytest.raises(ValueError, match="required"):
        api.complete_digit(None, "", 0.5, "raster", "none", 1.0, 0)
    gallery, _ = api.generate_digits("any", 3, 0.7, 1)
    assert len(gallery) == 3


def test_missing_model_says_where_it_looked(tmp_path, monkeypatch):
    from biglearn.app import models
    monkeypatch.setattr(models, "REPO_CHECKPOINTS", tmp_path / "none")
    monkeypatch.setenv("BIGLEARN_CHECKPOINTS", str(tmp_path / "none"))
    monkeypatch.delenv("BIGLEARN_HUB_REPO", raising=False)
    studio = DigitsStudio(ModelCache("cpu", MULTIMODAL_MODELS, DigitsModel.from_pretrained))
    with pytest.raises(ModelUnavailable, match="digits-multimodal.*train/train_digits.py"):
        studio.start()
