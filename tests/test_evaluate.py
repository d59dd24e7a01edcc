"""`python -m biglearn.evaluate` end to end on small subsets of the shared data, for MNIST and CelebA."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from biglearn import figures
from biglearn.checkpoint import export_sampling_checkpoint
from biglearn.config import preset
from biglearn.data import load_dataset
from biglearn.evaluate import MODES, EvalConfig, check_output_folder, evaluate, main, real_sets
from biglearn.inference import Completer
from biglearn.nn.generator import Generator
from biglearn.patches import pixel_mask

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SMALL = dict(n=24, k=8, diversity_images=3, batch=64)


def _export_tiny(folder: Path, dataset: str) -> Path:
    """An untrained tiny-preset generator as a sampling checkpoint: real files, written in a second."""
    cfg = preset(dataset, "tiny").model
    torch.manual_seed(0)
    export_sampling_checkpoint(folder, Generator(cfg), cfg, {"preset": "tiny", "kimg": 0})
    return folder


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    return {dataset: _export_tiny(tmp_path_factory.mktemp(f"tiny-{dataset}"), dataset)
            for dataset in ("mnist", "celeba")}


@pytest.fixture(scope="session")
def checkpoints(tiny) -> dict[str, Path]:
    """The shipped model of each dataset when present, else the tiny one."""
    shipped = {dataset: REPO / "checkpoints" / dataset for dataset in tiny}
    return {dataset: shipped[dataset] if (shipped[dataset] / "config.json").exists() else tiny[dataset]
            for dataset in tiny}


def _check_artefacts(out: Path, metrics: dict) -> None:
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    report = (out / "report.md").read_text()
    for target in metrics["targets"]:
        assert target["name"] in report
    for figure in metrics["figures"]:
        with Image.open(out / figure["file"]) as image:
            assert image.format == "PNG" and image.width > 16
        assert figure["file"] in report
    for mode in MODES:
        diversity = metrics["diversity"][mode]
        assert len(diversity["diversity"]) == len(metrics["ratios"]) == 10
        assert diversity["k"] >= 8
        assert all(d >= 0 for d in diversity["diversity"]) and all(e >= 0 for e in diversity["error"])


def test_mnist_end_to_end_from_the_command_line(checkpoints, tmp_path, capsys):
    out = tmp_path / "eval-mnist"
    argv = ["--checkpoint", str(checkpoints["mnist"]), "--out", str(out), "--n", "24", "--k", "8",
            "--diversity-images", "3", "--device", "cpu"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    _check_artefacts(out, metrics)
    printed = capsys.readouterr().out
    assert all(t["name"] in printed for t in metrics["targets"])  # every target is reported as PASS/MISS
    m = metrics["mnist"]
    assert metrics["n"] == 24 and len(m["joint"]["histogram"]) == 10
    assert sum(m["joint"]["histogram"]) == pytest.approx(1.0)
    assert 0 <= m["joint"]["entropy"] <= 2.303
    assert m["joint"]["frechet"] > 0 and m["real_floor"]["frechet"] > 0
    assert all(len(m["agreement"][mode]) == 10 for mode in MODES)
    # the model-free references on the same S: a black image reads as one digit; nearly all of a real digit plus
    # the nearest training digit's last patches reads as the digit
    references = m["agreement_references"]
    assert references["source_only"]["random"][0] < 0.5
    assert references["nearest_training_image"]["random"][-1] > 0.8
    assert "no model: T of the nearest training image" in (out / "report.md").read_text()
    # the r = 0.5 cell by digit: its counts add up to the overall agreement, the shares to 1
    half, labels = m["at_half"], torch.tensor(m["at_half"]["true_share"])
    by_digit = torch.tensor([v or 0.0 for v in half["agreement_by_digit"]])
    at_half = m["agreement"]["random"][metrics["ratios"].index(0.5)]
    assert (by_digit * labels).sum().item() == pytest.approx(at_half, abs=1e-6)
    assert sum(half["read_as"]) == pytest.approx(1.0) and sum(half["true_share"]) == pytest.approx(1.0)
    assert "By digit, random S at r = 0.5" in (out / "report.md").read_text()
    # Two real sets judged by a 99% classifier: the real floor is confident and covers the digits.
    assert m["real_floor"]["mean_max_prob"] > 0.9 and m["classifier"]["accuracy_on_second_set"] > 0.85
    files = {f["file"] for f in metrics["figures"]}
    assert {"joint.png", "fig3-random.png", "fig3-raster.png", "fig4-many-s.png", "fig4-many-noises.png",
            "fig5-relocated.png", "fig5-mixed.png", "fig5-ood.png", "plot-diversity.png", "plot-error.png",
            "plot-agreement.png"} <= files
    names = [t["name"] for t in metrics["targets"]]
    assert any("entropy" in n for n in names) and any("r = 0.9" in n for n in names)


def test_celeba_end_to_end_with_swd_references(checkpoints, tmp_path):
    out = tmp_path / "eval-celeba"
    metrics = evaluate(EvalConfig(checkpoint=str(checkpoints["celeba"]), out=out, device="cpu", **SMALL))
    _check_artefacts(out, metrics)
    s = metrics["swd"]
    levels = len(s["resolutions"])
    for result in [s["real_floor"], s["gaussian_baseline"], s["joint"], *s["completion"]["random"]]:
        assert len(result["per_level"]) == levels and result["average"] > 0
    # The references computed in the same run bracket what a model can score.
    assert s["real_floor"]["average"] < s["gaussian_baseline"]["average"]
    nearest = s["completion_references"]["nearest_training_image"]["random"]
    assert len(nearest) == len(metrics["ratios"]) and nearest[-1]["average"] < s["gaussian_baseline"]["average"]
    assert "no model: T of the nearest training image" in (out / "report.md").read_text()
    assert {"plot-swd.png", "fig5-ood.png", "fig3-random-generated.png"} <= {f["file"] for f in metrics["figures"]}


def test_repo_safe_run_writes_no_real_faces_or_ood_images(tiny, tmp_path):
    out = tmp_path / "safe"
    metrics = evaluate(EvalConfig(checkpoint=str(tiny["celeba"]), out=out, device="cpu", repo_safe=True,
                                  **SMALL))
    assert all(f["shows"] == "generated" for f in metrics["figures"])
    written = {p.name for p in out.glob("*.png")}
    assert written == {f["file"] for f in metrics["figures"]}
    assert not written & {"fig3-random.png", "fig4-many-s.png", "fig5-ood.png", "fig5-mixed.png"}


@pytest.mark.parametrize("argv,expected", [
    (["--n", "0"], "--n must be at least 2"),
    (["--batch", "0"], "--batch must be at least 1"),
    (["--diversity-images", "0"], "--diversity-images must be at least 1"),
    (["--device", "banana"], "unknown device"),
    (["--ood", "/nowhere"], "--ood /nowhere is not a folder"),
])
def test_bad_settings_fail_before_any_measurement(argv, expected, tmp_path, capsys):
    assert main(["--checkpoint", "mnist", "--out", str(tmp_path / "e"), *argv]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_an_unwritable_output_folder_fails_before_any_measurement(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["--checkpoint", "mnist", "--out", str(blocker / "e")]) == 2
    assert "cannot write to --out" in capsys.readouterr().err


def test_output_inside_the_repo_must_be_git_ignored_unless_repo_safe():
    with pytest.raises(ValueError, match="inside the repository"):
        check_output_folder(EvalConfig(checkpoint="x", out=REPO / "checkpoints" / "celeba" / "eval"))
    check_output_folder(EvalConfig(checkpoint="x", out=REPO / "runs" / "eval"))
    check_output_folder(EvalConfig(checkpoint="x", out=REPO / "checkpoints" / "eval", repo_safe=True))


def test_abused_sources_put_the_named_patches_under_s(tiny):
    completer = Completer.from_pretrained(tiny["mnist"], device="cpu")
    g, p = completer.grid, completer.cfg.patch_size
    images = torch.rand(2, 1, g * p, g * p, generator=torch.Generator().manual_seed(0))
    size, centre = max(1, g // 4), (g - max(1, g // 4)) // 2
    block = images[..., centre * p:(centre + size) * p, centre * p:(centre + size) * p]
    (moved, corner), (twice, pair) = figures.relocated_sources(completer, images)
    assert corner.sum() == size * size and corner[:size, :size].all()
    assert torch.equal(moved[..., :size * p, :size * p], block)
    assert pair.sum() == 2 * size * size
    rows, cols = pair.nonzero(as_tuple=True)
    left = cols.min().item()
    for start in (left, left + size):
        assert torch.equal(twice[..., centre * p:(centre + size) * p, start * p:(start + size) * p], block)
    other = torch.rand(2, 1, g * p, g * p, generator=torch.Generator().manual_seed(1))
    for mixed, grid in figures.mixed_sources(completer, images, other):
        visible = pixel_mask(completer.mask_from_grid(grid)[None], p)[0, 0]
        from_first = (mixed == images)[:, 0] & visible
        from_second = (mixed == other)[:, 0] & visible
        assert from_first.any() and from_second.any()           # x_S really mixes the two images
        assert (from_first | from_second)[:, visible].all()


def test_real_sets_are_drawn_from_the_whole_split(tiny):
    """MNIST's test file is ordered by source: the two real sets must not be its first 2n images."""
    cfg = EvalConfig(checkpoint=str(tiny["mnist"]), out=Path("unused"), data=str(DATA / "mnist" / "mnist.npz"), n=50)
    completer = Completer.from_pretrained(tiny["mnist"], "cpu")
    a, b = real_sets(completer, cfg)
    test = load_dataset("mnist", cfg.data, completer.cfg.image_size, "test")
    index = {image.numpy().tobytes(): i for i, image in enumerate(test.images)}
    drawn = [index[image.numpy().tobytes()] for image in torch.cat([a.images, b.images])]
    assert len(set(drawn)) == 100 and max(drawn) > 5000 and min(drawn) < 5000  # both halves of the file
    assert (test.labels[drawn[:50]] == a.labels).all()
