"""Image outputs reach Gradio's cache whole, even when several requests return the same picture at once."""
import threading

import numpy as np
from gradio import processing_utils
from PIL import Image

from biglearn.app.page.image_cache import save_pil_to_cache, write_image_outputs_atomically

ORIGINAL = processing_utils.save_pil_to_cache


def picture() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))


def test_same_path_and_bytes_as_gradios_own_and_no_temporary_files(tmp_path):
    ours = save_pil_to_cache(picture(), str(tmp_path / "ours"), format="png")
    theirs = ORIGINAL(picture(), str(tmp_path / "theirs"), format="png")
    assert ours.replace("/ours/", "/theirs/") == theirs
    assert open(ours, "rb").read() == open(theirs, "rb").read()
    assert save_pil_to_cache(picture(), str(tmp_path / "ours"), format="png") == ours  # cached: left as it is
    assert not list((tmp_path / "ours").rglob("*.tmp"))


def test_readers_never_see_a_partial_file_while_writers_repeat_it(tmp_path):
    expected = len(processing_utils.encode_pil_to_bytes(picture(), "png"))
    path, partial, done = [None], [], threading.Event()

    def write():
        for _ in range(40):
            path[0] = save_pil_to_cache(picture(), str(tmp_path), format="png")

    def read():
        while not done.is_set():
            if path[0]:
                with open(path[0], "rb") as handle:
                    size = len(handle.read())
                if size != expected:
                    partial.append(size)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write) for _ in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    assert not partial


def test_gradio_image_outputs_go_through_it(tmp_path):
    write_image_outputs_atomically()
    try:
        path = processing_utils.save_img_array_to_cache(np.zeros((4, 4, 3), np.uint8), str(tmp_path), format="png")
        assert Image.open(path).size == (4, 4) and processing_utils.save_pil_to_cache is save_pil_to_cache
    finally:
        processing_utils.save_pil_to_cache = ORIGINAL
