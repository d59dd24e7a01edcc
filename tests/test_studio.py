"""The app's behaviour, handlers called directly (no server): every control and API endpoint of the page."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from PIL import Image
from studio_fixtures import ROOT, app_checkpoints  # noqa: F401  (fixture)

from biglearn.app import masks as M
from biglearn.app import models, ops, render
from biglearn.app.api import Api
from biglearn.app.models import ModelCache, ModelUnavailable, find_checkpoint, gpu
from biglearn.app.session import Session, Studio, list_examples
from biglearn.checkpoint import CheckpointError
from biglearn.data import decode_image
from biglearn.imaging import ImageError


@pytest.fixture(scope="module")
def studio(app_checkpoints):  # noqa: F811
    return Studio(ModelCache(device=os.environ.get("BIGLEARN_TEST_DEVICE", "cpu")))


@pytest.fixture
def faces(studio):
    session, updates = studio.start("faces")
    return session


def kept_count(session: Session) -> int:
    return int(session.mask.sum())


def picture(path, size=(300, 200), mode="RGBA"):
    """An out-of-domain picture: a gradient with a disc, not a face or digit."""
    w, h = size
    array = np.zeros((h, w, 4), dtype=np.uint8)
    array[..., 0] = np.linspace(0, 255, w)[None]
    array[..., 2] = np.linspace(255, 0, h)[:, None]
    array[..., 3] = 255
    yy, xx = np.mgrid[:h, :w]
    array[(yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (h / 4) ** 2] = [250, 250, 40, 255]
    Image.fromarray(array).convert(mode).save(path)
    return path


# ---------------------------------------------------------------- models and checkpoints
def test_both_models_resolve_by_name(app_checkpoints):  # noqa: F811
    for name, folder in models.MODELS.items():
        path = find_checkpoint(name)
        assert path.name == folder and (path / "model.safetensors").is_file()


def test_local_checkpoints_come_before_the_environment_variable(tmp_path, monkeypatch, app_checkpoints):  # noqa: F811
    local = tmp_path / "repo"
    (local / "mnist").mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (local / "mnist" / name).write_bytes((app_checkpoints / "mnist" / name).read_bytes()
                                             if (app_checkpoints / "mnist").exists() else b"x")
    monkeypatch.setattr(models, "REPO_CHECKPOINTS", local)
    assert find_checkpoint("digits") == local / "mnist"
    monkeypatch.setattr(models, "REPO_CHECKPOINTS", tmp_path / "empty")
    monkeypatch.setenv("BIGLEARN_CHECKPOINTS", str(local))
    assert find_checkpoint("digits") == local / "mnist"


def test_nothing_found_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "REPO_CHECKPOINTS", tmp_path / "none")
    monkeypatch.delenv("BIGLEARN_CHECKPOINTS", raising=False)
    monkeypatch.delenv("BIGLEARN_HUB_REPO", raising=False)
    with pytest.raises(ModelUnavailable, match=r"No checkpoint for the faces model.*BIGLEARN_CHECKPOINTS \(not set\)"
                                               r".*BIGLEARN_HUB_REPO"):
        find_checkpoint("faces")
    with pytest.raises(ModelUnavailable, match="unknown model"):
        find_checkpoint("cats")


def test_hub_step_honours_offline_mode(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "REPO_CHECKPOINTS", tmp_path / "none")
    monkeypatch.delenv("BIGLEARN_CHECKPOINTS", raising=False)
    monkeypatch.setenv("BIGLEARN_HUB_REPO", "someone/biglearn-checkpoints")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelUnavailable, match=r"someone/biglearn-checkpoints/celeba \(offline cache only"):
        find_checkpoint("faces")


def test_hub_step_downloads_the_model_folder(tmp_path, monkeypatch, app_checkpoints):  # noqa: F811
    import huggingface_hub

    source = find_checkpoint("digits")
    calls = []

    def fake_download(repo, filename, *, subfolder, local_files_only):
        calls.append((repo, subfolder, filename, local_files_only))
        return str(source / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(models, "REPO_CHECKPOINTS", tmp_path / "none")
    monkeypatch.delenv("BIGLEARN_CHECKPOINTS", raising=False)
    monkeypatch.setenv("BIGLEARN_HUB_REPO", "someone/ckpts")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert find_checkpoint("digits") == source
    assert calls == [("someone/ckpts", "mnist", "config.json", False),
                     ("someone/ckpts", "mnist", "model.safetensors", False)]


def test_cache_loads_once_and_remembers_failures(tmp_path, monkeypatch, app_checkpoints):  # noqa: F811
    cache = ModelCache(device="cpu")
    assert cache.get("digits") is cache.get("digits")
    assert cache.status()["digits"].startswith("ready")
    monkeypatch.setattr(models, "REPO_CHECKPOINTS", tmp_path / "none")
    monkeypatch.delenv("BIGLEARN_CHECKPOINTS")
    empty = ModelCache(device="cpu")
    with pytest.raises(ModelUnavailable):
        empty.get("faces")
    monkeypatch.setattr(models, "find_checkpoint", lambda *args: pytest.fail("a failure is remembered"))
    with pytest.raises(ModelUnavailable):
        empty.get("faces")


def test_broken_checkpoint_is_reported(tmp_path, monkeypatch):
    (tmp_path / "celeba").mkdir()
    (tmp_path / "celeba" / "config.json").write_text("{not json")
    (tmp_path / "celeba" / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(models, "REPO_CHECKPOINTS", tmp_path)
    with pytest.raises(ModelUnavailable, match="cannot read"):
        ModelCache(device="cpu").get("faces")
    assert issubclass(CheckpointError, ValueError)


def test_gpu_shim_is_the_identity_without_spaces():
    def f(x):
        return x + 1
    assert gpu(f) is f and gpu(duration=10)(f) is f


def test_studio_without_models_raises_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "REPO_CHECKPOINTS", tmp_path)
    monkeypatch.delenv("BIGLEARN_CHECKPOINTS", raising=False)
    with pytest.raises(ModelUnavailable, match="No checkpoint"):
        Studio(ModelCache()).start("faces")


# ---------------------------------------------------------------- masks
def test_grid_strings_round_trip_and_accept_variants():
    mask = np.random.default_rng(0).random((8, 8)) < 0.5
    text = M.format_grid(mask)
    assert (M.parse_grid(text, 8) == mask).all()
    assert (M.parse_grid(text.replace("\n", "/").replace("#", "1").replace(".", "0"), 8) == mask).all()
    assert (M.parse_grid(text.replace("\n", ""), 8) == mask).all()
    with pytest.raises(ValueError, match="8 rows of 8"):
        M.parse_grid("##", 8)
    with pytest.raises(ValueError, match="may only use"):
        M.parse_grid("\n".join(["#" * 7 + "?"] * 8), 8)


def test_mask_tools():
    grid = 8
    assert M.tool_mask("all", grid).all() and not M.tool_mask("none", grid).any()
    current = M.tool_mask("raster", grid, ratio=0.25)
    assert current[:2].all() and not current[2:].any()
    assert (M.tool_mask("invert", grid, current=current) == ~current).all()
    random = M.tool_mask("random", grid, ratio=0.3, seed=1)
    assert random.sum() == round(0.3 * 64) and (random == M.tool_mask("random", grid, ratio=0.3, seed=1)).all()
    centre = M.tool_mask("centre", grid)
    assert centre.sum() == 16 and centre[2:6, 2:6].all()
    assert (M.tool_mask("border", grid) == ~centre).all()
    with pytest.raises(ValueError, match="unknown mask tool"):
        M.tool_mask("spiral", grid)


def test_requested_mask_from_string_or_ratio():
    assert M.requested_mask("", 0.5, "raster", 0, 4).sum() == 8
    assert M.requested_mask("#.../..../..../...#", None, None, None, 4).sum() == 2
    assert M.requested_mask(None, 0.0, "random", 3, 4).sum() == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        M.requested_mask("", 1.5, "random", 0, 4)


def test_clicks_map_to_patches():
    assert M.cell_at(0, 0, 8, 480) == (0, 0)
    assert M.cell_at(479, 479, 8, 480) == (7, 7)
    assert M.cell_at(61, 125, 8, 480) == (2, 1)
    assert M.cell_at(5000, -3, 8, 480) == (0, 7)  # clamped
    mask = np.zeros((8, 8), bool)
    assert M.toggled(mask, 2, 1)[2, 1] and not mask[2, 1]


def test_brush_coverage_selects_patches():
    painted = np.zeros((480, 480), bool)
    painted[0:60, 0:60] = True      # all of patch (0, 0)
    painted[60:70, 60:120] = True   # 1/6 of patch (1, 1): above the threshold
    painted[200:203, 200:203] = True  # a speck: below it
    cells = M.brushed_cells(painted, 8)
    assert cells[0, 0] and cells[1, 1] and cells.sum() == 2


def test_mix_layouts_and_painting():
    mask = np.ones((4, 4), bool)
    mask[3, 3] = False
    lr = M.layout_sources("left-right", mask)
    assert (lr[:, :2] == 0).all() and (lr[:3, 2:] == 1).all() and lr[3, 3] == -1
    assert (M.layout_sources("top-bottom", mask)[2:3] == 1).all()
    centre = M.layout_sources("centre-from-b", mask)
    assert centre[1:3, 1:3].min() == 1 and centre[0, 0] == 0
    cycle = [int(M.next_source(np.full((1, 1), v, np.int8), 0, 0, 2)[0, 0]) for v in (-1, 0, 1)]
    assert cycle == [0, 1, -1]
    text = M.format_sources(lr)
    assert (M.parse_sources(text, 4, 2) == lr).all()
    with pytest.raises(ValueError, match="may only use A, B"):
        M.parse_sources(text.replace("B", "C"), 4, 2)
    a, b = np.zeros((8, 8, 1), np.uint8), np.full((8, 8, 1), 9, np.uint8)
    mixed = M.mix_images([a, b], lr, 2)
    assert mixed[0, 0, 0] == 0 and mixed[0, 7, 0] == 9


def test_patch_moves():
    assert M.parse_moves("0,0 > 3,4; 9->27", 8) == [((0, 0), (3, 4)), ((1, 1), (3, 3))]
    for bad in ("", "0,0", "0,0 > 9,9", "a > b"):
        with pytest.raises(ValueError):
            M.parse_moves(bad, 8)
    image = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(2, 0).repeat(2, 1)  # 8x8, patch 2
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    moved, new_mask = M.moved_patches(image, mask, [((0, 0), (2, 3))], 2, copy=False)
    assert (moved[4:6, 6:8] == image[0:2, 0:2]).all() and new_mask[2, 3] and not new_mask[0, 0]
    copied, copy_mask = M.moved_patches(image, mask, [((0, 0), (2, 3))], 2, copy=True)
    assert copy_mask[0, 0] and copy_mask[2, 3]
    assert (image[0:2, 0:2] == 0).all()  # the input is untouched


# ---------------------------------------------------------------- rendering
def test_grid_view_and_panels():
    image = np.full((16, 16, 1), 200, np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    view = render.grid_view(image, mask)
    assert view.shape == (480, 480, 3)
    assert view[50, 50].tolist() == [200, 200, 200]       # kept: as is
    assert view[200, 200].max() < 130                      # generated: dimmed
    assert view[120, 50].tolist() == list(render.LINE)     # a grid line
    selected = render.grid_view(image, mask, selected=(1, 1))
    assert selected[121, 121].tolist() == list(render.SELECTED)
    lettered = render.grid_view(image, mask, sources=np.where(mask, 1, -1))
    assert lettered[1, 1].tolist() == list(render.SOURCE_COLOURS[1])
    done = np.full((16, 16, 1), 50, np.uint8)
    masked, generated, completed = render.panels(image, done, mask)
    assert masked.shape == (256, 256, 3)
    assert masked[10, 10, 0] == 200 and masked[200, 200, 0] == 128
    assert generated[10, 10, 0] == 128 and generated[200, 200, 0] == 50
    assert (completed == 50).all()


def test_png_and_gif_files(tmp_path):
    frames = [np.full((8, 8, 3), v, np.uint8) for v in (0, 100, 200)]
    gif = Image.open(render.save_gif(frames, "t"))
    assert gif.n_frames == 3
    assert Image.open(render.save_png(frames[1], "t")).format == "PNG"


# ---------------------------------------------------------------- model operations
def test_completion_keeps_source_patches_exactly(studio, faces):
    completer = studio.completer(faces)
    mask = M.tool_mask("random", completer.grid, ratio=0.5, seed=0)
    done = ops.complete(completer, faces.image, mask, 3)
    keep = render.patch_pixels(mask, completer.cfg.patch_size)[..., 0]
    assert (done.completed[keep] == faces.image[keep]).all()
    assert done.completed.shape == faces.image.shape and done.completed.dtype == np.uint8
    again = ops.complete(completer, faces.image, mask, 3)
    assert (again.completed == done.completed).all()  # a seed fixes the noise


def test_all_kept_and_empty_masks(studio, faces):
    completer = studio.completer(faces)
    everything = np.ones((completer.grid,) * 2, bool)
    done = ops.complete(completer, faces.image, everything, 0)
    assert (done.completed == faces.image).all() and "nothing to generate" in done.message
    joint = ops.complete(completer, faces.image, ~everything, 0)
    assert "joint generation" in joint.message


def test_wrong_image_shape_is_refused(studio, faces):
    with pytest.raises(ValueError, match="this model takes"):
        ops.complete(studio.completer(faces), np.zeros((5, 5, 3), np.uint8), faces.mask, 0)


# ---------------------------------------------------------------- session handlers
def test_start_shows_everything(studio):
    session, updates = studio.start("faces")
    for name in ("grid", "mask_text", "panels", "status", "seed", "mix_grid", "model", "ratio"):
        assert name in updates
    assert updates["grid"].shape == (480, 480, 3) and len(updates["panels"]) == 3
    assert kept_count(session) == round(0.5 * session.mask.size)
    assert "Kept" in updates["status"] and "ms" in updates["status"]


def test_click_toggles_a_patch_and_never_mutates_the_session(studio, faces):
    before = faces.mask.copy()
    session, updates = studio.click(faces, 5, 5)
    assert session.mask[0, 0] != before[0, 0] and (faces.mask == before).all()
    assert "Patch (0, 0) is now" in updates["status"]
    assert updates["mask_text"] == M.format_grid(session.mask)
    back, _ = studio.click(session, 5, 5)
    assert (back.mask == before).all()


def test_move_and_copy_by_two_clicks_then_undo(studio, faces):
    grid, cell = faces.mask.shape[0], 480 // faces.mask.shape[0]
    picked, updates = studio.click(faces, 2, 2, "move")
    assert picked.pending == (0, 0) and "Picked patch (0, 0)" in updates["status"]
    moved, updates = studio.click(picked, cell * (grid - 1) + 2, cell * (grid - 1) + 2, "move")
    patch = studio.completer(faces).cfg.patch_size
    assert (moved.image[-patch:, -patch:] == faces.image[:patch, :patch]).all()
    assert moved.mask[-1, -1] and not moved.mask[0, 0] and moved.pending is None
    assert "Moved patch (0, 0)" in updates["status"]
    copied, _ = studio.click(studio.click(faces, 2, 2, "copy")[0], cell + 2, 2, "copy")
    assert copied.mask[0, 0] == faces.mask[0, 0] and copied.mask[0, 1]  # a copy leaves its source alone
    undone, updates = studio.undo_moves(moved)
    assert (undone.image == faces.image).all() and (undone.mask == faces.mask).all()  # S too
    assert updates["mask_text"] == M.format_grid(faces.mask) and "mix_grid" in updates
    assert "No patch moves" in studio.undo_moves(faces)[1]["status"]
    cancelled, updates = studio.click(picked, 2, 2, "move")
    assert cancelled.pending is None and "cancelled" in updates["status"]


@pytest.mark.parametrize("tool", M.TOOLS)
def test_every_mask_tool(studio, faces, tool):
    session, updates = studio.tool(faces, tool)
    expected = {"all": session.mask.size, "none": 0, "invert": session.mask.size - kept_count(faces),
                "random": round(0.5 * session.mask.size), "raster": round(0.5 * session.mask.size),
                "centre": int(M.centre_block(session.mask.shape[0]).sum()),
                "border": int((~M.centre_block(session.mask.shape[0])).sum())}[tool]
    assert kept_count(session) == expected
    if tool == "all":
        assert "nothing to generate" in updates["status"]
        assert (updates["panels"][2] == render.enlarge(session.image)).all()
    if tool == "none":
        assert "joint generation" in updates["status"]


def test_ratio_slider(studio, faces):
    session, updates = studio.set_ratio(faces, 0.8, "raster")
    n = session.mask.size
    assert kept_count(session) == round(0.8 * n) and session.mask.flatten()[: round(0.8 * n)].all()
    assert f"S-ratio {round(0.8 * n) / n:.2f}" in updates["status"]
    assert "ratio" not in updates  # written back during a drag, the slider would jump back
    clicked, _ = studio.click(session, 2, 2)
    assert studio.set_ratio(clicked, 0.8, "raster") == (clicked, {})  # the slider echoing its value: S stays
    session, _ = studio.set_ratio(session, 0.0, "random")
    assert kept_count(session) == 0
    with pytest.raises(ValueError):
        studio.set_ratio(faces, 0.5, "spiral")


def test_random_s_grows_along_one_order_until_the_random_tool_shuffles_it(studio, faces):
    masks = [studio.set_ratio(faces, r, "random")[0].mask for r in (0.2, 0.5, 0.8, 0.5)]
    assert [int(m.sum()) for m in masks] == [round(r * masks[0].size) for r in (0.2, 0.5, 0.8, 0.5)]
    assert not (masks[0] & ~masks[1]).any() and not (masks[1] & ~masks[2]).any()  # each S inside the next
    assert (masks[3] == masks[1]).all()                                             # and back down again
    shuffled = faces
    for _ in range(5):  # a new order: some other S of the same size (two equal draws in a row: ~1e-19 each)
        shuffled, _ = studio.tool(shuffled, "random")
        if not (studio.set_ratio(shuffled, 0.5, "random")[0].mask == masks[1]).all():
            break
    else:
        pytest.fail("the random tool never changed the order of the patches")


@pytest.mark.parametrize("typed,used", [(2, 0.9), (-1, 0.0), ("0.3", 0.3)])
def test_ratio_typed_beyond_the_slider_is_clamped_and_shown(studio, faces, typed, used):
    session, updates = studio.set_ratio(faces, typed, "raster")
    assert session.ratio == used and kept_count(session) == round(used * session.mask.size)
    assert updates.get("ratio", used) == used and ("ratio" in updates) == (float(typed) != used)
    with pytest.raises(ValueError, match="S-ratio must be a number"):
        studio.set_ratio(faces, "abc", "raster")


def test_mask_text_edit(studio, faces):
    grid = faces.mask.shape[0]
    text = "\n".join(["#" * grid] + ["." * grid] * (grid - 1))
    session, updates = studio.edit_mask(faces, text)
    assert kept_count(session) == grid and updates["mask_text"] == text
    with pytest.raises(ValueError, match="rows"):
        studio.edit_mask(faces, "###")


def test_brush_paints_patches_and_draws_them_on_the_grid(studio, faces):
    session, _ = studio.tool(faces, "none")
    editor = studio.brush_view(session)["brush"]
    assert editor["background"].shape == (480, 480, 3)
    layer = np.zeros((480, 480, 4), np.uint8)
    layer[:120, :480, 3] = 255  # the top quarter of the canvas
    painted, updates = studio.apply_brush(session, {**editor, "layers": [layer]}, "kept")
    grid = session.mask.shape[0]
    assert painted.mask[: grid // 4].all() and kept_count(painted) == grid * grid // 4
    assert "marked kept" in updates["status"]
    assert "brush" not in updates  # the app redraws the editor in a follow-up event (show_brush)
    erased, _ = studio.apply_brush(painted, {"layers": [layer]}, "generated")
    assert kept_count(erased) == 0
    with pytest.raises(ValueError, match="Nothing painted"):
        studio.apply_brush(session, {"layers": []}, "kept")
    with pytest.raises(ValueError, match="Nothing painted"):
        studio.apply_brush(session, None, "kept")


def test_the_brush_picture_follows_changes_while_its_tab_is_open(studio, faces):
    opened, updates = studio.show_brush(faces, True)
    assert updates["brush"]["background"].shape == (480, 480, 3)
    changed, updates = studio.tool(opened, "border")
    assert (updates["brush"]["background"] == studio.brush_view(changed)["brush"]["background"]).all()
    closed, _ = studio.show_brush(changed, False)
    assert "brush" not in studio.tool(closed, "all")[1]  # no editor traffic for every click elsewhere


def test_seed_and_resample_change_the_noise(studio, faces):
    first = studio.set_seed(faces, 1)[1]["panels"][2]
    same = studio.set_seed(faces, "1")[1]["panels"][2]
    other_session, updates = studio.resample(faces)
    assert (first == same).all()
    assert other_session.seed != faces.seed and updates["seed"] == other_session.seed
    with pytest.raises(ValueError, match="whole number"):
        studio.set_seed(faces, "abc")


def test_samples_gallery(studio, faces):
    session, updates = studio.samples(faces, 4)
    assert len(updates["samples"]) == 4
    images = [img for img, caption in updates["samples"]]
    assert images[0].shape == (256, 256, 3) and not all((images[0] == img).all() for img in images[1:])
    assert len(studio.samples(faces, 1000)[1]["samples"]) == ops.MAX_SAMPLES


@pytest.mark.parametrize("mode", M.RATIO_MODES)
def test_sweep_strip_and_gif(studio, faces, mode):
    session, updates = studio.sweep(faces, mode)
    png, gif = updates["sweep_files"]
    strip = Image.open(png)
    size = faces.image.shape[0]
    factor = max(1, 128 // size)
    assert strip.size == ((11 * (size + 1) + 1) * factor, (size + 2) * factor)
    assert Image.open(gif).n_frames == 11 and updates["sweep_gif"] == gif
    assert (updates["sweep_strip"] == np.asarray(strip.convert("RGB"))).all()
    with pytest.raises(ValueError):
        studio.sweep(faces, "centre")


def test_upload_any_picture_and_recrop(studio, faces, tmp_path):
    session, updates = studio.upload(faces, str(picture(tmp_path / "ood.png")))
    assert session.source == "upload" and session.image.shape == faces.image.shape
    assert "300x200" in updates["status"] and updates["crop_preview"].shape[:2] == (200, 300)
    assert max(session.upload.shape[:2]) <= 512
    zoomed, updates = studio.recrop(session, 2.0, 1.0, -1.0, True)
    assert zoomed.crop.zoom == 2.0 and not (zoomed.image == session.image).all()
    assert "crop_preview" in updates and not {"zoom", "crop_x", "crop_y"} & updates.keys()  # mid-drag: no jumps
    clamped, updates = studio.recrop(session, 9, 1.5, -1.0, True)  # typed beyond the sliders
    assert (clamped.crop.zoom, clamped.crop.x) == (4.0, 1.0) and (updates["zoom"], updates["crop_x"]) == (4.0, 1.0)
    assert "crop_y" not in updates
    assert studio.recrop(clamped, 4.0, 1.0, -1.0, True) == (clamped, {})  # the sliders echoing the app's values
    assert studio.upload(faces, None) == (faces, {})


def test_an_uploaded_face_starts_framed_as_the_training_faces(studio, faces, tmp_path):
    """A CelebA-shaped portrait (178x218) starts cropped as the data loader crops faces; square and landscape
    pictures start at the largest centred square, as the loader leaves square ones."""
    path = picture(tmp_path / "portrait.png", size=(178, 218), mode="RGB")
    session, updates = studio.upload(faces, str(path))
    assert session.crop.zoom == 1.27 and updates["zoom"] == 1.27 and "training faces' framing" in updates["status"]
    size = session.image.shape[0]
    loader = decode_image(path.read_bytes(), size, 3).transpose(1, 2, 0)
    assert np.abs(session.image.astype(int) - loader.astype(int)).mean() < 2  # same framing, to rounding
    for shape in ((200, 200), (300, 200)):
        assert studio.upload(faces, str(picture(tmp_path / "other.png", size=shape)))[0].crop.zoom == 1.0


def test_bad_uploads_raise_user_errors(studio, faces, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    with pytest.raises(ImageError):
        studio.upload(faces, str(bad))
    huge = tmp_path / "huge.png"
    Image.new("1", (10_000, 10_000)).save(huge)
    with pytest.raises(ImageError, match="megapixels"):
        studio.upload(faces, str(huge))
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1), (9, 9, 9)).save(tiny)
    session, _ = studio.upload(faces, str(tiny))
    assert (session.image == 9).all()


def test_recrop_without_upload_explains(studio, faces):
    session, updates = studio.recrop(faces, 1.5, 0, 0, True)
    assert "upload one first" in updates["status"] and "zoom" not in updates
    session, updates = studio.recrop(faces, 10, 0, 0, True)  # typed beyond the slider: shown clamped all the same
    assert session.crop.zoom == updates["zoom"] == 4.0


def test_examples_switch_models(studio, faces):
    digits = list_examples("digits")
    assert len(digits) == 10 and (ROOT / "examples" / "digits" / "ATTRIBUTION.md").is_file()
    session, updates = studio.use_example(faces, "digits", 0)
    assert session.model == "digits" and updates["model"] == "digits"
    assert session.image.shape[-1] == 1 and "Switched to the digits model" in updates["status"]
    drawn, updates = studio.use_example(session, "drawn", 0)
    assert drawn.source == "upload" and "Out-of-domain" in updates["status"]
    with pytest.raises(ValueError, match="no digits example"):
        studio.use_example(faces, "digits", 99)


def test_no_celeba_images_among_the_examples():
    names = [p.name.lower() for p in (ROOT / "examples").rglob("*") if p.is_file()]
    assert not [n for n in names if "celeba" in n or n.endswith((".jpg", ".jpeg"))]
    for face in list_examples("faces"):
        assert face.name.startswith("generated-")


def test_generated_input(studio, faces):
    session, updates = studio.generate_input(faces)
    assert session.source == "generated" and "sampled from the model" in updates["status"]


def test_switching_models_mid_session(studio, faces, tmp_path):
    uploaded, _ = studio.upload(faces, str(picture(tmp_path / "ood.png")))
    digits, updates = studio.select_model(uploaded, "digits")
    cfg = studio.cache.get("digits").cfg
    assert digits.model == "digits" and digits.image.shape == (cfg.image_size, cfg.image_size, 1)
    assert digits.source == "upload" and "Switched to the digits model" in updates["status"]
    assert updates["samples"] == [] and updates["sweep_strip"] is None  # nothing of the faces left on show
    back, _ = studio.select_model(digits, "faces")
    assert back.image.shape[-1] == 3
    from_example, _ = studio.select_model(faces, "digits")
    assert from_example.source in ("example", "generated")
    assert studio.select_model(faces, "faces") == (faces, {})
    with pytest.raises(ValueError):
        studio.select_model(faces, "cats")


def test_a_model_switch_reframes_an_unadjusted_upload(studio, faces, tmp_path):
    """A portrait uploaded under one model gets the other model's starting crop on a switch, unless the user has
    moved the crop: then it stays where they put it."""
    path = str(picture(tmp_path / "portrait.png", size=(178, 218), mode="RGB"))
    as_digit, _ = studio.select_model(faces, "digits")
    as_digit, _ = studio.upload(as_digit, path)
    assert as_digit.crop.zoom == 1.0
    as_face, updates = studio.select_model(as_digit, "faces")
    uploaded_as_face, _ = studio.upload(faces, path)
    assert as_face.crop == uploaded_as_face.crop and as_face.crop.zoom == 1.27 and updates["zoom"] == 1.27
    assert (as_face.image == uploaded_as_face.image).all()
    assert studio.select_model(as_face, "digits")[0].crop.zoom == 1.0
    moved, _ = studio.recrop(as_face, 1.27, 0.5, 0.0, True)
    assert studio.select_model(moved, "digits")[0].crop == moved.crop


def test_mix_two_and_three_images(studio, faces, tmp_path):
    session, updates = studio.mix(faces)  # B defaults to another example (or a sample)
    assert "Mix: kept" in updates["status"] and len(updates["mix_panels"]) == 3
    with_b, _ = studio.mix_upload(faces, 0, str(picture(tmp_path / "b.png")))
    with_c, _ = studio.mix_upload(with_b, 1, str(picture(tmp_path / "c.png", mode="L")))
    assert len(studio.mix_sources(with_c)) == 3
    only_c, _ = studio.mix_upload(faces, 1, str(picture(tmp_path / "c.png", mode="L")))
    a, b, c = studio.mix_sources(only_c)  # C alone stays C; B is still the default example
    assert (b == studio.mix_sources(faces)[1]).all() and not (c == b).all()
    full, _ = studio.tool(with_c, "all")
    laid, updates = studio.set_layout(full, "top-bottom")
    grid = full.mask.shape[0]
    shown = M.parse_sources(updates["mix_text"], grid, 3)
    assert (shown[grid // 2:] == 1).all() and (shown[: grid // 2] == 0).all()
    assert updates["mix_layout"] == "top-bottom" and updates["mix_grid"].shape == (480, 480, 3)
    follows, updates = studio.tool(laid, "none")  # a layout follows the current S, and is redrawn with it
    assert (M.parse_sources(updates["mix_text"], grid, 3) == -1).all() and "mix_grid" in updates
    _, updates = studio.edit_mask(follows, "\n".join(["#" * grid] * grid))
    assert (M.parse_sources(updates["mix_text"], grid, 3) >= 0).all()
    painted = laid
    for _ in range(2):  # B -> C -> generated
        painted, updates = studio.mix_click(painted, 479, 479)
    assert painted.mix_layout == "paint" and painted.mix_map[-1, -1] == -1
    _, updates = studio.mix(painted)
    assert "generated 1." in updates["status"] and "from C" in updates["status"]
    with pytest.raises(ValueError):
        studio.set_layout(faces, "diagonal")


def test_sessions_share_nothing():
    a, b = Session(), Session()
    assert a.mix_uploads is not b.mix_uploads
    assert dataclasses.replace(a).mix_uploads == a.mix_uploads


# ---------------------------------------------------------------- API endpoints
@pytest.fixture(scope="module")
def api(studio):
    return Api(studio)


def test_api_complete_with_grid_string_and_ratio(api, tmp_path):
    path = str(picture(tmp_path / "x.png"))
    grid = api.studio.cache.get("faces").grid
    text = "/".join(["#" * grid] * (grid // 2) + ["." * grid] * (grid - grid // 2))
    masked, generated, completed, message = api.complete(path, "faces", text, None, None, 1)
    assert masked.shape == completed.shape == (256, 256, 3) and "Kept" in message
    *_, message = api.complete(path, "celeba", "", 0.25, "raster", 1)
    assert f"S-ratio {round(0.25 * grid * grid) / grid ** 2:.2f}" in message
    *_, message = api.complete(None, "digits", "", 0.0, "random", 5)
    assert "joint generation" in message
    *_, message = api.complete(path, "faces", "", 1.0, "raster", 5)
    assert "nothing to generate" in message


@pytest.mark.parametrize("args, error", [
    ((None, "faces", "", 0.5, "random", 0), "input image is required"),
    (("x", "cats", "", 0.5, "random", 0), "unknown model"),
    (("x", "faces", "#", 0.5, "random", 0), "rows"),
    (("x", "faces", "", 0.5, "spiral", 0), "unknown mask tool"),
    (("x", "faces", "", 2.0, "random", 0), "between 0 and 1"),
    (("x", "faces", "", 0.5, "random", "seven"), "whole number"),
])
def test_api_bad_inputs(api, args, error):
    with pytest.raises((ValueError, ImageError, ModelUnavailable), match=error):
        api.complete(*args)


def test_api_samples_sweep_mix_relocate_generate(api, tmp_path):
    a, b = str(picture(tmp_path / "a.png")), str(picture(tmp_path / "b.png", size=(90, 160)))
    gallery, message = api.samples(a, "faces", "", 0.5, "random", 0, 3)
    assert len(gallery) == 3 and "3 samples" in message
    strip, gif, message = api.sweep(a, "digits", "raster", 0)
    assert Image.open(gif).n_frames == 11 and strip.ndim == 3
    *panels, message = api.mix(a, b, "faces", "left-right", "", 1.0, "raster", 0)
    assert "from A" in message and "from B" in message and len(panels) == 3
    grid = api.studio.cache.get("faces").grid
    paint = "/".join(["A" * grid] + ["B" * grid] + ["." * grid] * (grid - 2))
    *_, message = api.mix(a, b, "faces", "paint", paint, None, None, 0)
    assert f"kept {grid} from A, {grid} from B" in message
    *_, message = api.relocate(a, "faces", "0,0 > 1,1", False, "", 0.5, "raster", 0)
    assert "Moved 1 patch" in message
    sample, message = api.generate("digits", 3)
    assert sample.shape[0] >= 16 and "p(x)" in message
    with pytest.raises(ValueError):
        api.sweep(a, "faces", "centre", 0)
    with pytest.raises(ValueError):
        api.relocate(a, "faces", "nowhere", False, "", 0.5, "raster", 0)


# ---------------------------------------------------------------- deployment
def test_readme_is_a_valid_space_card():
    gradio = pytest.importorskip("gradio")
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(ROOT / "README.md")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert str(card.data.sdk_version) == gradio.__version__
    assert str(card.data.python_version) == "3.11"
    assert "## Using the app" in card.text
