"""The public page as a hostile client meets it: Gradio's own queue protocol over HTTP, no browser, no gradio_client.

Every event that takes a file is found in the running app's `/config` (not a hard-coded list, so an upload added
later is covered too) and is sent paths to files outside the server's upload folder. The answers must not depend on
whether the file exists (so they can carry neither its pixels nor a hint that it is there).
"""
from __future__ import annotations

import json
import re
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from studio_fixtures import app_checkpoints, free_port  # noqa: F401  (fixture)

import app
from biglearn.app.models import ModelCache
from biglearn.app.session import Studio

FILE_COMPONENTS = {"image", "file", "imageeditor", "sketchpad", "imagemask"}


@pytest.fixture(scope="module")
def server(app_checkpoints):  # noqa: F811
    demo = app.build_demo(Studio(ModelCache(device="cpu")))
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                            **app.launch_options())
    url = url.rstrip("/")
    config = json.load(urllib.request.urlopen(f"{url}/config", timeout=30))
    yield url, config
    demo.close()


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> Path:
    """A picture outside every folder the server serves or accepts (.../present/secret.png; .../absent/secret.png
    does not exist)."""
    folder = tmp_path_factory.mktemp("server-side") / "present"
    folder.mkdir()
    path = folder / "secret.png"
    Image.fromarray(np.full((64, 64, 3), (250, 20, 200), dtype=np.uint8)).save(path)
    return path


def call(url: str, config: dict, fn_index: int, data: list, timeout: float = 120) -> dict:
    """One event over the queue: POST queue/join, then read the session's server-sent events until it completes.
    Returns {'success', 'output', 'warnings'} (warnings: the texts of gr.Warning/gr.Info logs)."""
    session = uuid.uuid4().hex
    prefix = f"{url}{config.get('api_prefix', '/gradio_api')}"
    dependency = config["dependencies"][fn_index]
    body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None,
            "trigger_id": dependency["targets"][0][0] if dependency["targets"] else None}
    request = urllib.request.Request(f"{prefix}/queue/join", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).read()
    warnings = []
    with urllib.request.urlopen(f"{prefix}/queue/data?session_hash={session}", timeout=timeout) as stream:
        for raw in stream:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "log":
                warnings.append(message.get("log"))
            if message.get("msg") == "process_completed":
                output = message.get("output") or {}  # without its timings, which differ from call to call
                return {"success": message.get("success"), "output": {k: output.get(k) for k in ("data", "error")},
                        "warnings": warnings}
    raise AssertionError("the event never completed")


def file_events(config: dict) -> dict[int, list[int]]:
    """fn_index -> positions of its file-taking inputs, for every event of the app."""
    kinds = {c["id"]: c["type"] for c in config["components"]}
    found = {}
    for index, dependency in enumerate(config["dependencies"]):
        positions = [i for i, c in enumerate(dependency["inputs"]) if kinds.get(c) in FILE_COMPONENTS]
        if positions:
            found[index] = positions
    return found


def payload(config: dict, fn_index: int, positions: list[int], path: str, meta: bool) -> list:
    """The event's inputs: each component's default value, and `path` as every file input (a FileData dict, with
    or without Gradio's "meta" marker; an editor gets it as its background and composite)."""
    components = {c["id"]: c for c in config["components"]}
    data = []
    for i, component_id in enumerate(config["dependencies"][fn_index]["inputs"]):
        component = components[component_id]
        value = component.get("props", {}).get("value")
        if component["type"] == "state":
            value = None
        if i in positions:
            file = {"path": path, **({"meta": {"_type": "gradio.FileData"}} if meta else {})}
            value = ({"background": file, "layers": [], "composite": file} if component["type"] in
                     ("imageeditor", "sketchpad", "imagemask") else file)
        data.append(value)
    return data


def test_the_app_has_file_events_to_attack(server):
    _, config = server
    events = file_events(config)
    # the uploads of both tabs, the two mix pictures, the brush, the drawing pad and the file-taking endpoints
    assert len(events) >= 10, events


@pytest.mark.parametrize("meta", [False, True], ids=["bare-path", "filedata-meta"])
def test_no_event_reads_or_probes_server_files(server, secret, meta):
    url, config = server
    for fn_index, positions in file_events(config).items():
        answers = []
        for path in (secret, secret.parent.parent / "absent" / secret.name):
            answer = call(url, config, fn_index, payload(config, fn_index, positions, str(path), meta))
            # Gradio's own refusals echo the path the client sent (whole or shortened): that tells it nothing new
            answers.append(re.sub(r"[^'\"\s]*secret\.png", "<the path sent>", json.dumps(answer)))
        name = config["dependencies"][fn_index].get("api_name")
        assert answers[0] == answers[1], f"event {fn_index} ({name}) answers differently for an existing file"


def test_paths_escaping_the_upload_folder_are_refused(tmp_path, secret):
    from biglearn.app.uploads import REFUSED, uploaded
    from biglearn.imaging import ImageError

    root = tmp_path / "uploads"
    (root / "abc").mkdir(parents=True)
    inside = root / "abc" / "ok.png"
    Image.new("RGB", (4, 4)).save(inside)
    (root / "abc" / "link.png").symlink_to(secret)
    assert uploaded({"path": str(inside)}, root) == str(inside.resolve())
    for path in (str(secret), str(root / "abc" / ".." / ".." / secret.parent.name / "secret.png"),
                 str(root / "abc" / "link.png"), str(root), str(root / "abc"), "relative.png", "a\x00b", 17):
        with pytest.raises(ImageError, match=REFUSED):
            uploaded({"path": path}, root)
    with pytest.raises(ImageError, match=REFUSED):
        uploaded(["not", "a", "dict"], root)
    assert uploaded(None, root) is None and uploaded({"url": "https://example.org/x.png"}, root) is None


def test_inline_captures_are_bounded(tmp_path):
    import base64

    from biglearn.app.uploads import MAX_DATA_URL_CHARS, REFUSED, uploaded
    from biglearn.imaging import ImageError

    data = b"\x89PNG fake bytes"
    assert uploaded({"url": "data:image/png;base64," + base64.b64encode(data).decode()}, tmp_path) == data
    with pytest.raises(ImageError, match="limit"):
        uploaded({"url": "data:image/png;base64," + "A" * MAX_DATA_URL_CHARS}, tmp_path)
    with pytest.raises(ImageError, match=REFUSED):
        uploaded({"url": "data:image/png;base64,***"}, tmp_path)


def endpoint(config: dict, name: str) -> int:
    return next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == name)


@pytest.mark.parametrize("name,data,error", [
    ("digits_generate", ["5", 0, 1.0, 0, "random", 1.0], "count must be between 1 and 32"),
    ("digits_generate", ["²", 4, 1.0, 0, "random", 1.0], "the label must be a digit 0-9"),
    ("digits_generate", ["5", float("nan"), 1.0, 0, "random", 1.0], "count must be a finite whole number"),
    ("digits_generate", ["5", 4, 1.0, 0, "random", float("nan")], "the guidance must be a finite number"),
    ("digits_generate", ["5", 4, 1.0, 0, "random", 1e300], "the guidance must be between 0 and 8"),
    ("generate", ["faces", float("nan")], "the seed must be a finite whole number"),
    ("generate", ["faces", float("inf")], "the seed must be a finite whole number"),
    ("generate", ["faces", "9" * 5000], "the seed must be a whole number"),
    ("samples", [None, "faces", "", 0.5, "random", 0, 1e300], "count must be between 1 and 16"),
    ("relocate", [None, "faces", "9" * 5000 + " > 1", False, "", 0.5, "random", 0], "is not a patch"),
    ("relocate", [None, "faces", "0 > 1; " * 200_000, False, "", 0.5, "random", 0], "the limit is 8,192"),
    ("complete", [None, "faces", "#" * 100_000, 0.5, "random", 0], "the limit is 8,192"),
])
def test_odd_values_get_the_apps_own_message(server, name, data, error):
    url, config = server
    answer = call(url, config, endpoint(config, name), data)
    assert answer["success"] is False and error in json.dumps(answer["output"]), answer


def editor_file(path: Path):
    from gradio.data_classes import FileData
    return FileData(path=str(path))


def test_editor_values_are_bounded_before_any_decoding(tmp_path, monkeypatch):
    """A few-kilobyte PNG that decodes to 13,000 x 13,000, sent as 40 layers: refused from its header alone."""
    import gradio as gr
    from gradio.components.image_editor import EditorData

    from biglearn.app.page.editors import MAX_LAYERS, ImageEditor

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    editor = ImageEditor(type="numpy", image_mode="RGBA", format="png", canvas_size=(480, 480), render=False)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (13_000, 13_000)).save(bomb)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(gr.Error, match="13000 x 13000 pixels; the canvas is 480 x 480"):
        editor.preprocess(EditorData(background=None, layers=[editor_file(bomb)] * 40, composite=None))
    drawn = tmp_path / "drawn.png"
    Image.new("RGBA", (480, 480), (255, 0, 0, 255)).save(drawn)
    value = editor.preprocess(EditorData(background=None, layers=[editor_file(drawn)] * 40, composite=None))
    assert len(value["layers"]) == MAX_LAYERS and value["layers"][0].shape == (480, 480, 4)
    for outside in (secret_picture(tmp_path.parent), "not-a-png.png"):
        with pytest.raises(gr.Error, match="cannot be read"):
            editor.preprocess(EditorData(background=editor_file(outside), layers=[], composite=None))


def secret_picture(folder: Path) -> Path:
    path = folder / "outside.png"
    Image.new("RGBA", (8, 8)).save(path)
    return path


def test_the_editor_blob_store_takes_only_the_page_s_layers_and_keeps_few_values():
    import gradio as gr
    from gradio.components.image_editor import AcceptBlobs

    from biglearn.app.page.editors import MAX_BLOB_BYTES, MAX_STORED_VALUES, ImageEditor

    editor = ImageEditor(render=False)

    def blob(kind="layer", index=0, size=10, id="a"):
        return AcceptBlobs(data={"type": kind, "index": index, "file": b"", "id": id}, files=[("blob", b"x" * size)])
    for bad in (blob(index=10**9), blob(index=-1), blob(index=None), blob(kind="other"),
                blob(size=MAX_BLOB_BYTES + 1)):
        with pytest.raises(gr.Error):
            editor.accept_blobs(bad)
    assert not editor.blob_storage
    for i in range(3 * MAX_STORED_VALUES):
        editor.accept_blobs(blob(id=f"value-{i}"))
    assert len(editor.blob_storage) == MAX_STORED_VALUES and f"value-{3 * MAX_STORED_VALUES - 1}" in editor.blob_storage
    editor.accept_blobs(blob(kind="composite", index=7, id="value-0-new"))
    assert editor.blob_storage["value-0-new"].composite == b"x" * 10 and not editor.blob_storage["value-0-new"].layers


def test_the_server_fetches_no_url_it_is_given(server):
    from gradio import processing_utils

    from biglearn.app.page.limits import URL_REFUSED
    with pytest.raises(ValueError, match=URL_REFUSED):
        processing_utils.save_url_to_cache("https://example.org/endless.png", "/tmp")
    url, config = server
    index = endpoint(config, "complete")
    answer = call(url, config, index, [{"path": "https://example.org/endless.png", "meta": {"_type": "gradio.FileData"}},
                                       "faces", "", 0.5, "random", 0])
    assert answer["success"] is False


def test_unexpected_errors_do_not_show_server_paths(server):
    import os
    url, config = server
    answer = call(url, config, endpoint(config, "complete"),
                  [{"path": "x.png", "meta": {"_type": "gradio.FileData"}}, "faces", "", 0.5, "random", 0])
    assert answer["success"] is False and os.getcwd() not in json.dumps(answer)


@pytest.mark.parametrize("chunked", [False, True], ids=["declared-length", "chunked"])
def test_request_bodies_over_the_limit_are_refused(server, chunked):
    import http.client
    import urllib.parse

    from biglearn.app.page.limits import MAX_REQUEST_BYTES
    url, config = server
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    body = b"x" * (MAX_REQUEST_BYTES + 1)
    path = f"{config.get('api_prefix', '/gradio_api')}/queue/join"
    if chunked:
        connection.request("POST", path, body=iter([body[:2**20], body[2**20:]]), encode_chunked=True,
                           headers={"Content-Type": "application/json"})
    else:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    assert connection.getresponse().status == 413


def test_click_positions_are_checked():
    from biglearn.app.values import parse_point
    assert parse_point([3, 4.5]) == (3.0, 4.5)
    for bad in ("ab", 5, [1], [1, 2, 3], ["x", 1], [float("nan"), 1], None):
        with pytest.raises(ValueError):
            parse_point(bad)
