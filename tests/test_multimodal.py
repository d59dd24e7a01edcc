"""The multi-modal MNIST model: tokenizer, sampling API, checkpoints, a real training run + exact resume, a small
CI model's classification / label-conditioning figures, and the evaluator."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from biglearn.checkpoint import CheckpointError, list_checkpoints, load_training_state, save_training_state
from biglearn.classifier import load_classifier
from biglearn.data import load_mnist
from biglearn.multimodal.config import preset
from biglearn.multimodal import model as model_module
from biglearn.multimodal.model import DigitsModel
from biglearn.multimodal.objective import LABEL, sample_pairs
from biglearn.multimodal.trainer import shifted, tokenize_digits, train, transformer_lr, unmoved_unless_classifying
from conftest import REPO

SHIPPED = "digits-multimodal"


@pytest.fixture(scope="module")
def test_digits(mnist_npz):
    data = load_mnist(mnist_npz, 28, "test")
    return data.images[:500], data.labels[:500]


@pytest.fixture(scope="module")
def shipped() -> DigitsModel:
    return DigitsModel.from_pretrained(SHIPPED, device="cpu")


@pytest.fixture(scope="module")
def classifier():
    return load_classifier("mnist-classifier", "cpu")[0]


# ---------------------------------------------------------------- tokenizer
def test_tokenizer_round_trip_keeps_real_digits_readable(shipped, test_digits, classifier):
    images, labels = test_digits
    codes = shipped.encode(images)
    assert codes.shape == (500, 49) and codes.dtype == torch.long
    assert 0 <= codes.min() and codes.max() < shipped.cfg.codebook_size
    recon = shipped.decode(codes)
    assert recon.shape == (500, 1, 28, 28) and 0 <= recon.min() and recon.max() <= 1
    agreement = (classifier.predict_proba(recon).argmax(1) == labels).float().mean().item()
    assert agreement >= 0.98, agreement
    assert (recon - images.float() / 255).abs().mean() < 0.08


def test_tokenizer_refuses_wrong_shapes(shipped):
    with pytest.raises(ValueError, match="28"):
        shipped.encode(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="codes must lie"):
        shipped.tokenizer.decode(torch.full((1, 7, 7), 10_000))


# ---------------------------------------------------------------- sampling API
def test_shipped_model_classifies_test_digits(shipped, test_digits):
    images, labels = test_digits
    probs = shipped.classify(images)
    assert probs.shape == (500, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(500))
    assert (probs.argmax(1) == labels).float().mean() >= 0.93   # 0.9452 on the whole split (model card)


def test_a_draw_is_what_torch_multinomial_draws_from_the_same_generator():
    """The sampler's exponential race gives torch.multinomial's draws for the same seed, so seeded samples did not
    change when it replaced multinomial (were torch to change its method, seeded samples would move: this says so)."""
    logits = torch.randn(64, 266)
    logits[:, :10] = float("-inf")                      # wrong-modality entries, as the transformer masks them
    for seed in range(20):
        for temperature in (1.0, 0.7):
            probs = (logits / temperature).softmax(dim=1)
            expected = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(seed)).squeeze(1)
            drawn = DigitsModel._draw(logits, temperature, torch.Generator().manual_seed(seed))
            assert torch.equal(drawn, expected)
            assert (drawn >= 10).all()


def test_generation_is_seeded_and_respects_labels(shipped):
    a, la = shipped.generate(4, labels=[1, 2, 3, 4], seed=7)
    b, lb = shipped.generate(4, labels=[1, 2, 3, 4], seed=7)
    assert torch.equal(a, b) and la.tolist() == [1, 2, 3, 4]
    c, _ = shipped.generate(4, labels=[1, 2, 3, 4], seed=8)
    assert not torch.equal(a, c)
    joint, labels = shipped.generate(6, seed=1)
    assert joint.shape == (6, 1, 28, 28) and ((0 <= labels) & (labels < 10)).all()
    greedy = [shipped.generate(2, labels=5, temperature=0, seed=s, order="raster")[0] for s in (0, 1)]
    assert torch.equal(greedy[0], greedy[1])           # a fixed order and the most likely tokens: no randomness


def test_completion_keeps_source_pixels_exactly(shipped, test_digits):
    images = test_digits[0][:4]
    keep = shipped.random_mask(0.5, batch=4, seed=0)
    out, labels = shipped.complete(images, keep, seed=0)
    pixels = keep.view(4, 1, 7, 7).repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert torch.equal(out[pixels], images.float()[pixels] / 255)
    full, _ = shipped.complete(images, torch.ones(7, 7, dtype=torch.bool), labels=3, seed=0)
    assert torch.equal(full, images.float() / 255)                       # nothing to generate
    given, y = shipped.complete(images, keep, labels=[9, 9, 9, 9], seed=0)
    assert y.tolist() == [9, 9, 9, 9]


@pytest.mark.parametrize("call, message", [
    (lambda m, x: m.complete(x, torch.ones(5, 5, dtype=torch.bool)), "keep must be"),
    (lambda m, x: m.complete(x, torch.ones(7, 7, dtype=torch.bool), labels=12), "digits 0-9"),
    (lambda m, x: m.generate(2, labels=[1, 2, 3]), "3 labels for 2"),
    (lambda m, x: m.generate(0), "at least 1"),
    (lambda m, x: m.generate(1, temperature=-1), "temperature"),
    (lambda m, x: m.generate(1, order="spiral"), "order must be"),
    (lambda m, x: m.generate(1, labels=3, guidance=-1), "guidance must lie"),
    (lambda m, x: m.generate(1, labels=3, guidance=1e9), "guidance must lie"),
])
def test_bad_requests_get_clear_errors(shipped, test_digits, call, message):
    with pytest.raises(ValueError, match=message):
        call(shipped, test_digits[0][:2])


@pytest.mark.parametrize("joint_only", [False, True], ids=["y-given-in-some-rows", "joint-rows-only"])
def test_guided_sampling_draws_from_the_guided_logits_of_both_orders(shipped, monkeypatch, joint_only):
    """Every draw with guidance w sees cond + w (cond - uncond): cond from the sampled order, uncond from the same
    order with y moved last, both recomputed here by full (uncached) passes over the finished tokens. With joint
    rows only, the twins join late (at the first y drawn) from a copy of the rows' cache."""
    drawn_from, orders = [], []
    draw, pairs = DigitsModel._draw, model_module.pairs_from_sources
    monkeypatch.setattr(DigitsModel, "_draw", staticmethod(lambda logits, *a: drawn_from.append(logits) or
                                                           draw(logits, *a)))
    monkeypatch.setattr(model_module, "pairs_from_sources", lambda *a, **k: orders.append(pairs(*a, **k)) or
                        orders[-1])
    weight, labels = 1.5, torch.tensor([3, 8, 0])
    is_source = torch.zeros(3, 50, dtype=torch.bool)
    if not joint_only:
        is_source[:2, 0] = True                 # y given in rows 0 and 1; row 2 draws it on its way (joint)
        is_source[1, 1:15] = True               # row 1 completes the top two token rows of a digit
    start = shipped._sequence(torch.randint(0, shipped.cfg.codebook_size, (3, 49)), labels)
    finished = shipped.fill(start, is_source, temperature=0, seed=0, guidance=weight)
    assert torch.equal(finished[is_source], start[is_source])
    order, num_source = orders[0]
    label_index = (order == 0).long().argmax(dim=1)
    twin, twin_num_source = model_module.without_label_until_last(order, num_source, label_index)
    assert (twin[:, -1] == 0).all() and twin_num_source.tolist() == ([0] * 3 if joint_only else [0, 14, 0])
    if joint_only:  # the seed puts every y past the first few draws, so the late start is exercised
        assert int(label_index.min()) > 3
    assert len(drawn_from) == 50 - int(num_source.min())
    rows = torch.arange(3)
    with torch.no_grad():
        cond = shipped.transformer(finished, order, num_source)
        uncond = shipped.transformer(finished, twin, twin_num_source)
    for k, logits in enumerate(drawn_from):
        slot = (num_source + k).clamp(max=49)
        twin_slot = slot - (label_index < slot).long()
        expected = model_module.guided(cond[rows, slot], uncond[rows, twin_slot], weight,
                                       drawing_label=label_index == slot)
        active = num_source + k < 50
        torch.testing.assert_close(logits[active], expected[active], rtol=1e-4, atol=1e-4)


def test_guidance_makes_label_conditioned_digits_agree_with_their_label(shipped, classifier):
    wanted = torch.arange(10).repeat(10)
    agreement = {}
    for weight in (0.0, 1.0):
        samples, _ = shipped.generate(len(wanted), labels=wanted, seed=3, guidance=weight)
        agreement[weight] = (classifier.predict_proba(samples).argmax(1) == wanted).float().mean().item()
    # 0.870 -> 0.990 on 300 samples at temperature 1 (checkpoint card)
    assert agreement[1.0] >= 0.95 and agreement[1.0] > agreement[0.0], agreement


def test_checkpoint_mismatches_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a 'digits-multimodal'"):
        DigitsModel.from_pretrained("mnist")                                  # a GAN checkpoint
    folder = tmp_path / "broken"
    model = DigitsModel.from_pretrained(SHIPPED, device="cpu")
    model.save(folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["dim"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not match"):
        DigitsModel.from_pretrained(folder)


# ---------------------------------------------------------------- training
def tiny_config(data, out, **changes):
    cfg = preset("tiny")
    cfg.data, cfg.out, cfg.limit_images = str(data), str(out), 256
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def test_training_cli_writes_every_artefact(tmp_path, mnist_npz):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, str(REPO / "train" / "train_digits.py"), "--preset", "tiny",
                             "--data", str(mnist_npz), "--out", str(out), "--set", "limit_images=256"],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "tokenizer kimg" in result.stdout and "transformer kimg" in result.stdout and "ETA" in result.stdout
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in stats] == ["tokenizer"] * 2 + ["transformer"] * 2
    assert all({"loss", "nll_x", "nll_y"} <= set(r) for r in stats if r["stage"] == "transformer")
    assert list((out / "tensorboard").iterdir())
    sheets = {p.name.split("-")[0] for p in (out / "samples").glob("*.png")}
    assert sheets == {"recon", "fig11"}
    model = DigitsModel.from_pretrained(out / "export", device="cpu")
    assert model.meta["kimg"] == pytest.approx(0.256) and model.meta["preset"] == "tiny"
    dry = subprocess.run([sys.executable, str(REPO / "train" / "train_digits.py"), "--dry-run", "--set", "dim=256",
                          "--set", "heads=8"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert json.loads(dry.stdout)["model"]["dim"] == 256


def test_shifted_moves_the_digit_and_fills_the_border_with_background():
    image = torch.arange(1, 26, dtype=torch.uint8).view(1, 1, 5, 5)
    moved = shifted(image, dx=1, dy=-2)
    assert torch.equal(moved[0, 0, :3, 1:], image[0, 0, 2:, :4])
    assert moved[0, 0, 3:].sum() == 0 and moved[0, 0, :, 0].sum() == 0
    assert torch.equal(shifted(image, 0, 0), image)


def test_stage_2_can_train_on_shifted_copies_of_every_digit(shipped, test_digits):
    images, labels = test_digits[0][:3], test_digits[1][:3]
    size = shipped.cfg.codebook_size
    plain = tokenize_digits(shipped.tokenizer, images, labels, size)
    augmented = tokenize_digits(shipped.tokenizer, images, labels, size, shift_pixels=1)
    assert augmented.shape == (9 * 3, 50)
    assert torch.equal(augmented[:3], plain)                                   # the unmoved digits first
    assert torch.equal(augmented[:, 0], (labels.repeat(9) + size))             # every copy keeps its label
    copies = {tuple(row.tolist()) for row in augmented[:, 1:]}
    expected = {tuple(row.tolist()) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                for row in shipped.encode(shifted(images, dx, dy))}
    assert copies == expected and len(copies) > 3 * 4                          # the moves change the codes


def test_moved_copies_can_serve_only_the_classification_pairs():
    cfg = preset("wide")
    digits, copies, n = 1000, 9, cfg.model.num_image_tokens
    torch.manual_seed(0)
    rows = torch.randint(digits * copies, (4096,))
    order, num_source = sample_pairs(len(rows), cfg)
    kept = unmoved_unless_classifying(rows, order, num_source, digits)
    classify = (order[:, -1] == LABEL) & (num_source == n)             # T' = {y}: S' = every image token
    assert 0.2 < classify.float().mean() < 0.4
    assert bool(((num_source == n) & ~classify).any())                  # y + 48 image tokens: the same size, generative
    assert torch.equal(kept[classify], rows[classify])                  # any copy, moved ones included
    assert bool((kept[~classify] < digits).all())                       # the generative pairs: unmoved digits
    assert torch.equal(kept % digits, rows % digits)                    # always the digit that was drawn


def test_transformer_lr_warms_up_holds_and_cools_down():
    cfg = preset("demo")
    cfg.lr, cfg.kimg, cfg.warmup_kimg, cfg.cooldown_kimg = 1e-3, 100.0, 10.0, 20.0
    lrs = [transformer_lr(cfg, kimg * 1000) for kimg in (0, 5, 10, 50, 80, 90, 100, 120)]
    assert lrs == pytest.approx([0, 5e-4, 1e-3, 1e-3, 1e-3, 5e-4, 0, 0])
    cfg.cooldown_kimg = 0.0
    assert transformer_lr(cfg, 100_000) == pytest.approx(1e-3)  # no cool-down: constant to the end


def test_resume_continues_bit_for_bit(tmp_path, mnist_npz):
    straight = train(tiny_config(mnist_npz, tmp_path / "straight"))
    train(tiny_config(mnist_npz, tmp_path / "split", kimg=0.128))           # stops half-way through stage 2
    resumed = train(tiny_config(mnist_npz, tmp_path / "split", resume="auto"))
    a = torch.load(list_checkpoints(straight)[-1], weights_only=True)
    b = torch.load(list_checkpoints(resumed)[-1], weights_only=True)
    assert a["step"] == b["step"] and a["stage"] == b["stage"] == "transformer"
    for part in ("tokenizer", "transformer"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)


def test_a_run_can_adopt_a_trained_tokenizer_and_skip_stage_1(tmp_path, mnist_npz):
    donor = train(tiny_config(mnist_npz, tmp_path / "donor", kimg=0.128))
    run = train(tiny_config(mnist_npz, tmp_path / "run", kimg=0.128, tokenizer_from=str(donor / "export")))
    stages = [json.loads(line)["stage"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stages == ["transformer"]  # no tokenizer tick
    adopted, original = (DigitsModel.from_pretrained(path / "export", device="cpu") for path in (run, donor))
    for key, value in original.tokenizer.state_dict().items():
        assert torch.equal(adopted.tokenizer.state_dict()[key], value), key
    assert adopted.meta["tokenizer_from"] == str(donor / "export") and "tokenizer_kimg" not in adopted.meta
    other = tiny_config(mnist_npz, tmp_path / "other", tokenizer_from=str(donor / "export"))
    other.model.codebook_size = 16
    with pytest.raises(CheckpointError, match="tokenizer_from .* its model is"):
        train(other)


def test_a_fine_tune_starts_from_a_checkpoints_transformer(tmp_path, mnist_npz):
    donor = DigitsModel.from_pretrained(train(tiny_config(mnist_npz, tmp_path / "donor", kimg=0.128)) / "export",
                                        device="cpu")
    folder = str(tmp_path / "donor" / "export")
    cfg = tiny_config(mnist_npz, tmp_path / "tune", kimg=0.032, tokenizer_from=folder, transformer_from=folder,
                      lr=1e-9, warmup_kimg=0.0)  # a step too small to move the weights: they must be the donor's
    tuned = DigitsModel.from_pretrained(train(cfg) / "export", device="cpu")
    for key, value in donor.transformer.state_dict().items():
        torch.testing.assert_close(tuned.transformer.state_dict()[key], value, rtol=0, atol=1e-6)
    assert tuned.meta["transformer_from"] == folder
    wider = tiny_config(mnist_npz, tmp_path / "wider", tokenizer_from=folder, transformer_from=folder)
    wider.model.dim = 48
    with pytest.raises(CheckpointError, match="transformer_from .* its model is"):
        train(wider)


def digits_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "train" / "train_digits.py"), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def test_resume_alone_continues_with_the_run_settings_and_logs_each_tick_once(tmp_path, mnist_npz):
    out = tmp_path / "run"
    first = digits_cli("--preset", "tiny", "--data", str(mnist_npz), "--out", str(out), "--set", "limit_images=256",
                       "--kimg", "0.128")
    assert first.returncode == 0, first.stderr
    last = json.loads((out / "stats.jsonl").read_text().splitlines()[-1])
    with (out / "stats.jsonl").open("a") as stats:  # a tick after the last checkpoint, by a process killed later
        stats.write(json.dumps({**last, "step": last["step"] + 2}) + "\n")
    resumed = digits_cli("--out", str(out), "--resume", "auto", "--kimg", "0.256", "--set", "weight_decay=0.5")
    assert resumed.returncode == 0, resumed.stderr
    assert "256 training digits" in resumed.stdout  # the run's limit_images, not the demo preset's 60,000
    config = json.loads((out / "config.json").read_text())
    assert (config["preset"], config["kimg"]) == ("tiny", 0.256)
    steps = [json.loads(line)["step"] for line in (out / "stats.jsonl").read_text().splitlines()]
    assert steps == [4, 8, 12, 16]  # 2 tokenizer ticks, 1 transformer tick, then 1 more after the resume
    groups = load_training_state(list_checkpoints(out)[-1])["optimizer"]["param_groups"]
    assert groups[0]["weight_decay"] == 0.5  # a setting given on resume applies (the checkpoint's is replaced)


@pytest.mark.parametrize("flags,expected", [
    (["--set", "batch=0"], "batch must be >= 1"),
    (["--set", "classify_prob=2"], "classify_prob must lie in [0, 1]"),
    (["--set", "shift_pixels=5"], "shift_pixels must lie in 0..3"),
    (["--set", "shift_classify_only=true"], "shift_classify_only needs shift_pixels >= 1"),
    (["--set", "out="], "out (the run folder) must not be empty"),
    (["--set", "transformer_from=digits-multimodal"], "set tokenizer_from to the same checkpoint"),
    (["--device", "banana"], "unknown device"),
])
def test_bad_settings_are_refused_before_anything_runs(flags, expected):
    result = digits_cli("--preset", "tiny", *flags, "--dry-run")
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr


def test_a_new_run_into_a_used_folder_is_refused(tmp_path, mnist_npz):
    run = train(tiny_config(mnist_npz, tmp_path / "run", kimg=0.128))
    before = list_checkpoints(run)
    with pytest.raises(CheckpointError, match="--resume auto"):
        train(tiny_config(mnist_npz, tmp_path / "run"))
    assert list_checkpoints(run) == before


def test_resume_with_another_model_is_refused(tmp_path, mnist_npz):
    train(tiny_config(mnist_npz, tmp_path / "run", kimg=0.128))
    cfg = tiny_config(mnist_npz, tmp_path / "run", resume="auto")
    cfg.model.dim = 48
    with pytest.raises(CheckpointError, match="another model"):
        train(cfg)


def test_resume_ignores_a_model_field_retired_since_the_checkpoint(tmp_path, mnist_npz):
    first = train(tiny_config(mnist_npz, tmp_path / "run", kimg=0.128))
    path = list_checkpoints(first)[-1]
    state = load_training_state(path)
    config = json.loads(state["config"])
    config["model"]["dropout"] = 0.0  # a field earlier versions wrote
    state["config"] = json.dumps(config)
    save_training_state(path, state)
    train(tiny_config(mnist_npz, tmp_path / "run", resume="auto", kimg=0.256))
    assert list_checkpoints(first)[-1] != path  # it went on and saved a newer checkpoint


# ---------------------------------------------------------------- a small CI model's figures
@pytest.fixture(scope="module")
def ci_model(tmp_path_factory, mnist_npz) -> DigitsModel:
    """A small model trained here for about a minute on 2,000 real digits."""
    cfg = preset("ci")
    cfg.data, cfg.out = str(mnist_npz), str(tmp_path_factory.mktemp("ci") / "run")
    return DigitsModel.from_pretrained(train(cfg) / "export", device="cpu")


def test_ci_model_classifies_and_generates_by_label(ci_model, mnist_npz, classifier):
    held_in = load_mnist(mnist_npz, 28, "train")
    images, labels = held_in.images[:500], held_in.labels[:500]
    accuracy = (ci_model.classify(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= CI_CLASSIFICATION, accuracy
    wanted = torch.arange(10).repeat_interleave(20)
    samples, _ = ci_model.generate(len(wanted), labels=wanted, seed=0)
    agreement = (classifier.predict_proba(samples).argmax(1) == wanted).float().mean().item()
    assert agreement >= CI_CONDITIONING, agreement


CI_CLASSIFICATION = 0.8
CI_CONDITIONING = 0.3   # chance is 0.1


def test_evaluator_writes_metrics_report_and_figures(ci_model, tmp_path, mnist_npz):
    folder = tmp_path / "model"
    ci_model.save(folder, {"preset": "ci"})
    out = tmp_path / "eval"
    result = subprocess.run([sys.executable, "-m", "biglearn.multimodal.evaluate", "--checkpoint", str(folder),
                             "--out", str(out), "--data", str(mnist_npz), "--n", "100", "--per-label", "5",
                             "--n-complete", "20"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert {t["name"] for t in metrics["targets"]} >= {"classification accuracy p(y | x)",
                                                       "label-conditioned generation agreement p(x | y)"}
    assert len(metrics["completion"]["random"]["labelled"]) == 10
    assert metrics["classification"]["images"] == len(load_mnist(mnist_npz, 28, "test"))   # the whole split
    for fig in metrics["figures"]:
        assert (out / fig["file"]).stat().st_size > 0
    assert "## Targets" in (out / "report.md").read_text()
