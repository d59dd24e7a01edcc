"""Every named API endpoint through a real server (launched in-process on a free port) with gradio_client."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from studio_fixtures import ROOT, app_checkpoints, free_port  # noqa: F401  (fixture)

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

import app  # noqa: E402
from biglearn.app.models import ModelCache  # noqa: E402
from biglearn.app.session import Studio  # noqa: E402
from biglearn.imaging import MAX_FILE_BYTES  # noqa: E402

ENDPOINTS = {"/complete", "/samples", "/sweep", "/mix", "/relocate", "/generate", "/digits_classify",
             "/digits_generate", "/digits_complete", "/digits_sweep"}
DIGIT = ROOT / "examples" / "digits" / "mnist-test-0000-label7.png"


@pytest.fixture(scope="module")
def url(app_checkpoints):  # noqa: F811
    demo = app.build_demo(Studio(ModelCache(device="cpu")))
    demo.queue(default_concurrency_limit=2)
    _, local_url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                                  quiet=True, **app.launch_options())
    yield local_url
    demo.close()


@pytest.fixture(scope="module")
def client(url):
    return Client(url, verbose=False)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)).save(folder / "ood.png")
    Image.fromarray(rng.integers(0, 255, (90, 60), dtype=np.uint8)).save(folder / "gray.jpg")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    Image.new("1", (10_000, 10_000)).save(folder / "huge.png")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "one.png")
    (folder / "oversized.png").write_bytes(b"\0" * (MAX_FILE_BYTES + 1))
    return {p.stem: str(p) for p in folder.iterdir()}


def read(path) -> np.ndarray:
    image = Image.open(path)
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


def test_named_endpoints_only(client):
    named = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert named == ENDPOINTS  # the page's own (session) events are private


def test_complete(client, pictures):
    masked, generated, completed, message = client.predict(
        handle_file(pictures["ood"]), "faces", "", 0.5, "random", 7, api_name="/complete")
    assert read(masked).shape == read(completed).shape == (256, 256, 3)
    assert "Kept" in message
    again = client.predict(handle_file(pictures["ood"]), "faces", "", 0.5, "random", 7, api_name="/complete")
    assert (read(again[2]) == read(completed)).all()  # same seed, same picture


def test_complete_with_a_grid_string_on_digits(client, pictures):
    cfg = ModelCache(device="cpu").get("digits").cfg
    grid = cfg.grid
    text = "\n".join(["#" * grid] * 2 + ["." * grid] * (grid - 2))
    *_, message = client.predict(handle_file(str(DIGIT)), "digits", text, None, None, 1, api_name="/complete")
    assert f"Kept {2 * grid} patches" in message and text in message


def test_all_kept_empty_and_tiny(client, pictures):
    *_, message = client.predict(handle_file(pictures["gray"]), "faces", "", 1.0, "raster", 0, api_name="/complete")
    assert "nothing to generate" in message
    *_, message = client.predict(None, "faces", "", 0.0, "random", 0, api_name="/complete")
    assert "joint generation" in message
    _, _, completed, _ = client.predict(handle_file(pictures["one"]), "faces", "", 1.0, "raster", 0,
                                        api_name="/complete")
    assert (read(completed) == [200, 10, 10]).all()


@pytest.mark.parametrize("picture, args, error", [
    ("corrupt", ("faces", "", 0.5, "random", 0), "not an image"),
    ("huge", ("faces", "", 0.5, "random", 0), "megapixels"),
    ("ood", ("horses", "", 0.5, "random", 0), "unknown model"),
    ("ood", ("faces", "##", 0.5, "random", 0), "rows of"),
    ("ood", ("faces", "", 0.5, "zigzag", 0), "unknown mask tool"),
    (None, ("faces", "", 0.5, "random", 0), "input image is required"),
])
def test_bad_inputs_give_messages(client, pictures, picture, args, error):
    image = handle_file(pictures[picture]) if picture else None
    with pytest.raises(Exception, match=error):
        client.predict(image, *args, api_name="/complete")


def test_oversized_upload_is_refused(client, pictures):
    with pytest.raises(Exception, match="(?i)size|large|exceed"):
        client.predict(handle_file(pictures["oversized"]), "faces", "", 0.5, "random", 0, api_name="/complete")


def test_samples(client, pictures):
    gallery, message = client.predict(handle_file(pictures["ood"]), "faces", "", 0.3, "raster", 2, 5,
                                      api_name="/samples")
    assert len(gallery) == 5 and "5 samples" in message
    first = read(gallery[0]["image"])
    assert any((read(item["image"]) != first).any() for item in gallery[1:])
    grid = ModelCache(device="cpu").get("faces").grid
    with pytest.raises(Exception, match="may only use"):
        client.predict(handle_file(pictures["ood"]), "faces", "?" * grid * grid, None, None, 0, 3,
                       api_name="/samples")
    with pytest.raises(Exception, match="count must be between 1 and 16"):  # not silently 16
        client.predict(handle_file(pictures["ood"]), "faces", "", 0.3, "raster", 2, 100, api_name="/samples")


def test_sweep(client, pictures):
    strip, gif, message = client.predict(handle_file(str(DIGIT)), "digits", "raster", 0, api_name="/sweep")
    assert read(strip).shape[1] > 10 * read(strip).shape[0]
    assert Image.open(gif).format == "GIF" and Image.open(gif).n_frames == 11
    with pytest.raises(Exception, match="sweep mode"):
        client.predict(handle_file(str(DIGIT)), "digits", "border", 0, api_name="/sweep")


def test_mix(client, pictures):
    *panels, message = client.predict(handle_file(pictures["ood"]), handle_file(pictures["gray"]), "faces",
                                      "top-bottom", "", 1.0, "raster", 0, api_name="/mix")
    assert len(panels) == 3 and "from A" in message and "from B" in message
    with pytest.raises(Exception, match="unknown layout"):
        client.predict(handle_file(pictures["ood"]), handle_file(pictures["gray"]), "faces", "spiral", "", 0.5,
                       "random", 0, api_name="/mix")
    with pytest.raises(Exception, match="image_b is required"):
        client.predict(handle_file(pictures["ood"]), None, "faces", "left-right", "", 0.5, "random", 0,
                       api_name="/mix")


def test_relocate_and_generate(client, pictures):
    *panels, message = client.predict(handle_file(pictures["ood"]), "faces", "0,0 > 2,2; 1 > 3", True, "",
                                      0.5, "raster", 0, api_name="/relocate")
    assert "Copied 2 patch(es)" in message
    with pytest.raises(Exception, match="not a patch"):
        client.predict(handle_file(pictures["ood"]), "faces", "0,0 > 99,99", False, "", 0.5, "raster", 0,
                       api_name="/relocate")
    sample, message = client.predict("digits", 4, api_name="/generate")
    assert read(sample).ndim == 3 and "p(x)" in message
    with pytest.raises(Exception, match="unknown model"):
        client.predict("cats", 4, api_name="/generate")


def test_concurrent_users_get_their_own_results(url, pictures):
    """Several clients at once through the queue: each gets exactly what it would get alone."""
    def call(seed):
        own = Client(url, verbose=False)
        return read(own.predict(handle_file(pictures["ood"]), "faces", "", 0.5, "random", seed,
                                api_name="/complete")[2])

    alone = {seed: call(seed) for seed in (1, 2)}
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(call, [1, 2, 1, 2]))
    for seed, result in zip([1, 2, 1, 2], together):
        assert (result == alone[seed]).all()
    assert (alone[1] != alone[2]).any()


# ---------------------------------------------------------------- the multi-modal digits model
def test_digits_classify(client, pictures):
    result, message = client.predict(handle_file(str(DIGIT)), api_name="/digits_classify")
    assert {c["label"] for c in result["confidences"]} == {str(d) for d in range(10)}
    assert sum(c["confidence"] for c in result["confidences"]) == pytest.approx(1.0, abs=1e-4)
    assert "most likely" in message
    for picture, error in (("corrupt", "not an image"), ("huge", "megapixels")):
        with pytest.raises(Exception, match=error):
            client.predict(handle_file(pictures[picture]), api_name="/digits_classify")


def test_digits_generate(client):
    gallery, message = client.predict("5", 4, 0.8, 3, "random", api_name="/digits_generate")
    assert len(gallery) == 4 and all(item["caption"] == "y = 5 (given)" for item in gallery)
    again, _ = client.predict("5", 4, 0.8, 3, "random", api_name="/digits_generate")
    assert all((read(a["image"]) == read(b["image"])).all() for a, b in zip(gallery, again))
    raster, _ = client.predict("any", 3, 1.0, 3, "raster", api_name="/digits_generate")
    assert len(raster) == 3
    unguided, _ = client.predict("5", 4, 0.8, 3, "random", 0, api_name="/digits_generate")
    assert any((read(a["image"]) != read(b["image"])).any() for a, b in zip(gallery, unguided))
    for args, error in ((("12", 4, 1.0, 0, "random"), "digit 0-9"), (("any", 99, 1.0, 0, "random"), "between 1 and 32"),
                        (("any", 2, -1, 0, "random"), "temperature"), (("any", 2, 1, 0, "spiral"), "sampling order"),
                        (("5", 2, 1, 0, "random", 99), "guidance must be between")):
        with pytest.raises(Exception, match=error):
            client.predict(*args, api_name="/digits_generate")


def test_digits_complete_and_sweep(client, pictures):
    text = "\n".join(["#######"] * 3 + ["......."] * 4)
    masked, completed, source_probs, message = client.predict(
        handle_file(str(DIGIT)), text, None, None, "7", 1.0, 2, "raster", api_name="/digits_complete")
    assert read(masked).shape == read(completed).shape and "21 of 49 tokens kept" in message
    assert "the label 7" in message and len(source_probs["confidences"]) == 10
    *_, message = client.predict(handle_file(pictures["ood"]), "", 0.0, "random", "none", 1.0, 0, "random",
                                 api_name="/digits_complete")
    assert "p(x, y)" in message
    with pytest.raises(Exception, match="input image is required"):
        client.predict(None, "", 0.5, "random", "none", 1.0, 0, "random", api_name="/digits_complete")
    strip, message = client.predict(handle_file(str(DIGIT)), "raster", "3", 1.0, 0, "random",
                                    api_name="/digits_sweep")
    assert read(strip).shape[1] > 10 * (read(strip).shape[0] - 18)
    with pytest.raises(Exception, match="sweep mode"):
        client.predict(handle_file(str(DIGIT)), "border", "none", 1.0, 0, "random", api_name="/digits_sweep")
