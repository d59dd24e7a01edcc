"""Short real training runs on the shared data: artefacts, kill + resume, torchrun, NaN stop, bad inputs."""
from __future__ import annotations

import gc
import json
import math
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from biglearn.checkpoint import list_checkpoints
from biglearn.config import TrainConfig, preset
from biglearn.inference import Completer
from biglearn.trainer import TrainingDiverged, d_warm_up_verdict, train
from conftest import REPO

TINY = ["--preset", "tiny", "--set", "limit_images=256"]


def run_cli(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(REPO / "train" / script), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(list_checkpoints(run)[-1], weights_only=True)["G"]


def test_mnist_run_writes_every_artefact(tmp_path, mnist_npz):
    out = tmp_path / "run"
    result = run_cli("train_mnist.py", *TINY, "--data", str(mnist_npz), "--out", str(out), "--kimg", "0.048")
    assert result.returncode == 0, result.stderr
    assert "img/s" in result.stdout and "ETA" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "tiny" and config["model"]["dataset"] == "mnist"
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["kimg"] >= 0.048 and {"J1", "J2", "J3", "R1", "L1", "L2", "L3"} <= set(stats[-1])
    # every snapshot (each tick in the tiny preset) measures the joint samples, judged by the digit classifier
    assert {"joint_spread", "joint_entropy", "joint_confidence"} <= set(stats[-1])
    # and completions of held-out digits at S-ratio 0.5: their spread across noises, their label agreement
    assert 0 <= stats[-1]["completion_agreement"] <= 1 and 0 < stats[-1]["completion_spread"] < 1
    assert stats[-1]["completion_roughness"] > 0  # generated pixels vs the real ones there
    assert "r=0.5 spread" in result.stdout
    assert 0 <= stats[-1]["joint_entropy"] <= math.log(10) + 1e-6 and "joint spread" in result.stdout
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    for kind in ("sheet-random", "sheet-raster", "joint"):
        assert list((out / "samples").glob(f"{kind}-*.png")), kind
    state = torch.load(list_checkpoints(out)[-1], weights_only=True)
    assert {"G", "D", "G_ema", "opt_g", "opt_d", "step", "images_seen", "rng_cpu", "config"} <= set(state)
    completer = Completer.from_pretrained(out / "export", device="cpu")
    assert completer.cfg.image_size == 16 and completer.cfg.channels == 1


def test_l1_pretraining_comes_first_then_the_gan(tmp_path, mnist_npz):
    out = tmp_path / "run"
    result = run_cli("train_mnist.py", *TINY, "--data", str(mnist_npz), "--out", str(out), "--kimg", "0.064",
                     "--set", "pretrain_l1_kimg=0.032")
    assert result.returncode == 0, result.stderr
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    before = [row for row in stats if row["kimg"] <= 0.032]
    after = [row for row in stats if row["kimg"] > 0.032]
    assert before and after
    assert all(row["RC"] > 0 and row["J1"] == row["L1"] == 0 for row in before)
    assert all(row["RC"] == 0 and row["J1"] > 0 and row["L1"] > 0 for row in after)
    assert "RC " in result.stdout and "L1 pretraining of G, no D" in result.stdout
    assert result.stdout.count("ETA of this phase") == len(before) - 1  # the last L1 tick ends the phase


def test_celeba_run_reads_tar_shards(tmp_path, celeba_dir):
    out = tmp_path / "faces"
    result = run_cli("train_celeba.py", "--preset", "tiny", "--set", "limit_images=64", "--data", str(celeba_dir),
                     "--out", str(out), "--kimg", "0.032")
    assert result.returncode == 0, result.stderr
    assert "64 training images" in result.stdout
    assert Completer.from_pretrained(out / "export", device="cpu").cfg.channels == 3


def test_killed_run_resumes_bit_for_bit(tmp_path, mnist_npz):
    args = [*TINY, "--data", str(mnist_npz), "--kimg", "0.4", "--set", "tick_kimg=0.04"]
    straight = tmp_path / "straight"
    assert run_cli("train_mnist.py", *args, "--out", str(straight)).returncode == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(REPO / "train" / "train_mnist.py"), *args, "--out", str(killed)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list_checkpoints(killed) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = list_checkpoints(killed)
    assert first, "no checkpoint before the kill"
    assert torch.load(first[-1], weights_only=True)["images_seen"] < 400, "the run finished before the kill"
    # No other flag: the run continues with its own settings (preset, data, length, tick), not the defaults.
    resumed = run_cli("train_mnist.py", "--out", str(killed), "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout
    a, b = final_weights(straight), final_weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the ticks logged after the last checkpoint by the killed process are not logged twice
    assert stats_kimg(killed) == stats_kimg(straight)


def stats_kimg(run: Path) -> list[float]:
    return [json.loads(line)["kimg"] for line in (run / "stats.jsonl").read_text().splitlines()]


def test_ctrl_c_stops_with_a_checkpoint_that_resumes(tmp_path, mnist_npz):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(REPO / "train" / "train_mnist.py"), *TINY, "--data", str(mnist_npz),
                             "--out", str(out), "--kimg", "100", "--set", "tick_kimg=0.016",
                             "--set", "snap_ticks=1000"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert "kimg" in proc.stdout.readline() + proc.stdout.readline()  # the start line, then a first tick
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopping on Ctrl-C" in stdout and "Traceback" not in stderr
    saved = torch.load(list_checkpoints(out)[-1], weights_only=True)
    assert 0 < saved["images_seen"] < 100_000
    assert run_cli("train_mnist.py", "--out", str(out), "--resume", "auto", "--kimg",
                   str(saved["images_seen"] / 1000 + 0.016)).returncode == 0


def test_a_new_run_into_a_used_folder_is_refused_and_changes_nothing(tmp_path, mnist_npz):
    out = tmp_path / "run"
    assert run_cli("train_mnist.py", *TINY, "--data", str(mnist_npz), "--out", str(out),
                   "--kimg", "0.016").returncode == 0
    before = {p.name: p.read_bytes() for p in [*out.glob("*.pt"), *out.glob("export/*"), out / "config.json"]}
    result = run_cli("train_mnist.py", *TINY, "--data", str(mnist_npz), "--out", str(out), "--kimg", "0.032")
    assert result.returncode == 2 and "--resume auto" in result.stderr and "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in [*out.glob("*.pt"), *out.glob("export/*"), out / "config.json"]} == before


def test_resuming_applies_new_optimizer_settings_and_clears_stale_temp_files(tmp_path, mnist_npz):
    out = tmp_path / "run"
    assert run_cli("train_mnist.py", *TINY, "--data", str(mnist_npz), "--out", str(out),
                   "--kimg", "0.016").returncode == 0
    stale = out / ".checkpoint-00000099.pt.abc.tmp"  # what a kill in the middle of a save leaves
    stale.write_bytes(b"half")
    result = run_cli("train_mnist.py", "--out", str(out), "--resume", "auto", "--kimg", "0.032",
                     "--set", "betas=0.5,0.9", "--set", "eps=1e-6")
    assert result.returncode == 0, result.stderr
    group = torch.load(list_checkpoints(out)[-1], weights_only=True)["opt_g"]["param_groups"][0]
    assert (tuple(group["betas"]), group["eps"]) == ((0.5, 0.9), 1e-6)
    assert json.loads((out / "config.json").read_text())["betas"] == [0.5, 0.9]
    assert not stale.exists()


def test_resume_errors_name_the_problem(tmp_path, mnist_npz):
    out = tmp_path / "run"
    assert run_cli("train_mnist.py", *TINY, "--data", str(mnist_npz), "--out", str(out),
                   "--kimg", "0.016").returncode == 0
    exported = run_cli("train_mnist.py", "--resume", str(out / "export" / "model.safetensors"))
    assert exported.returncode == 2 and "not a training checkpoint" in exported.stderr
    newest = list_checkpoints(out)[-1]
    newest.write_bytes(b"")  # a save cut short
    truncated = run_cli("train_mnist.py", "--out", str(out), "--resume", "auto")
    assert truncated.returncode == 2 and "cannot read training checkpoint" in truncated.stderr
    assert "weights_only" not in truncated.stderr  # torch's advice to unpickle is not passed on


def test_a_dry_run_into_a_closed_pipe_exits_quietly():
    """`--dry-run | head -1`: the reader goes away before the config is printed; no traceback, exit 0."""
    proc = subprocess.Popen([sys.executable, str(REPO / "train" / "train_mnist.py"), "--preset", "tiny", "--dry-run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert b"Traceback" not in proc.stderr.read()


@pytest.mark.parametrize("flags,expected", [
    (["--set", "snap_ticks=0"], "snap_ticks must be >= 1"),
    (["--set", "betas=0.1"], "betas must be two values"),
    (["--set", "precision=fp16"], "precision must be fp32 or bf16"),
    (["--set", "lr=abc"], "--set lr=abc"),
    (["--set", "patch_size=0"], "patch_size must be positive"),
    (["--set", "d_arch=mlp"], "d_arch must be one of"),
    (["--set", "reconstruction_samples=2"], "needs source_reconstruction > 0"),
    (["--set", "reconstruction_samples=2", "--set", "source_reconstruction=1", "--set", "mode_seeking=1"],
     "mode_seeking 0"),
    (["--set", "mismatch_reals=-1"], "mismatch_reals must not be negative"),
    (["--set", "pretrain_l1_kimg=-1"], "pretrain_l1_kimg must not be negative"),
    (["--set", "feature_matching=-1"], "feature_matching must not be negative"),
    (["--set", "d_warmup_kimg=-1"], "d_warmup_kimg must not be negative"),
    (["--set", "d_scales=3"], "d_scales must be 1 or 2"),
    (["--set", "encoded_reconstruction=10"], "encoded_reconstruction and latent_encoder go together"),
    (["--set", "latent_encoder=true"], "set latent_dims > 0"),
    (["--set", "encoded_kl=-1"], "encoded_kl must not be negative"),
    (["--set", "consistency=1"], "consistency and consistency_critic go together"),
    (["--device", "banana"], "unknown device"),
])
def test_bad_settings_are_refused_before_anything_runs(flags, expected):
    result = run_cli("train_mnist.py", "--preset", "tiny", *flags, "--dry-run")
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr


# The paper's step, and every addition whose parameters DDP must keep in sync (the ranks' weights are compared
# at the end of training, so a gradient that skipped the all-reduce fails the run).
@pytest.mark.parametrize("flags", [[], ["--set", "latent_dims=8", "--set", "latent_regress=1", "--set",
                                        "noise_modulation=true", "--set", "mapping_lr_mult=0.01",
                                        "--set", "d_arch=conv", "--set", "mismatch_reals=1",
                                        "--set", "pretrain_l1_kimg=0.016", "--set", "d_scales=2",
                                        "--set", "feature_matching=1", "--set", "latent_encoder=true",
                                        "--set", "encoded_reconstruction=10", "--set", "consistency_critic=true",
                                        "--set", "consistency=1"]],
                         ids=["paper-step", "additions"])
def test_torchrun_two_processes_on_cpu(tmp_path, mnist_npz, flags):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "train" / "train_mnist.py"), *TINY, "--data", str(mnist_npz), "--out", str(out),
           "--kimg", "0.032", "--device", "cpu", *flags]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    assert list_checkpoints(out)


def test_torchrun_ranks_stop_together_at_the_time_limit(tmp_path, mnist_npz):
    """--max-minutes under torchrun: every rank must stop at the same step (a rank stopping alone left the other
    waiting in a collective that never came)."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "train" / "train_mnist.py"), *TINY, "--data", str(mnist_npz), "--out", str(out),
           "--kimg", "1000", "--max-minutes", "0.1", "--device", "cpu", "--set", "tick_kimg=0.032"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stopping after --max-minutes 0.1" in result.stdout
    assert list_checkpoints(out)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, mnist_npz):
    cfg = preset("mnist", "tiny")
    cfg.data, cfg.out, cfg.limit_images, cfg.kimg = str(mnist_npz), str(tmp_path / "nan"), 64, 0.2
    train(cfg)
    good = list_checkpoints(tmp_path / "nan")[-1]
    cfg.kimg, cfg.resume, cfg.lr = 0.4, "auto", 1e30  # an absurd learning rate blows the weights up
    with pytest.raises(TrainingDiverged, match="non-finite.*last good checkpoint"):
        train(cfg)
    assert list_checkpoints(tmp_path / "nan")[-1] == good


@pytest.mark.parametrize("dataset,expected", [
    ("mnist", dict(image_size=64, patch_size=8, batch=256, d_overlap=0)),  # App. D: no tricks for MNIST
    ("celeba", dict(image_size=120, patch_size=10, batch=128, eps=1e-5, grad_clip=5.0, warmup_epochs=10.0,
                    d_overlap=2)),
])
def test_dry_run_prints_table3(dataset, expected):
    result = run_cli(f"train_{dataset}.py", "--preset", "paper", "--dry-run")
    assert result.returncode == 0, result.stderr
    cfg = TrainConfig.from_dict(json.loads(result.stdout))
    m = cfg.model
    table3 = dict(enc_depth=6, enc_heads=8, enc_dim=256, dec_depth=6, dec_heads=8, dec_dim=512,
                  d_depth=6, d_heads=8, d_dim=256)
    assert {k: getattr(m, k) for k in table3} == table3
    assert (cfg.lr, cfg.r1_gamma, cfg.betas) == (1e-4, 10.0, (0.1, 0.999))
    assert (cfg.source_beta, cfg.target_beta, cfg.comm_beta) == ((0.5, 3.0), (3.0, 0.5), (0.5, 3.0))
    for key, value in expected.items():
        assert getattr(m if hasattr(m, key) else cfg, key) == value, key


def test_every_preset_value_can_be_overridden():
    result = run_cli("train_mnist.py", "--preset", "paper", "--batch", "64", "--set", "dec_dim=384",
                     "--set", "lr=2e-4", "--set", "betas=0.0,0.99", "--dry-run")
    cfg = json.loads(result.stdout)
    assert (cfg["batch"], cfg["model"]["dec_dim"], cfg["lr"], cfg["betas"]) == (64, 384, 2e-4, [0.0, 0.99])
    bad = run_cli("train_mnist.py", "--set", "no_such_key=1", "--dry-run")
    assert bad.returncode != 0 and "unknown config key" in bad.stderr


def test_missing_data_gives_a_clear_error(tmp_path):
    result = run_cli("train_celeba.py", "--preset", "tiny", "--data", str(tmp_path / "nowhere"),
                     "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "not found" in result.stderr and "Traceback" not in result.stderr


def test_a_batch_that_splits_minibatch_std_groups_is_refused(tmp_path):
    result = run_cli("train_mnist.py", *TINY, "--set", "d_mbstd_group=4", "--batch", "6", "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "d_mbstd_group" in result.stderr and "Traceback" not in result.stderr


def test_resuming_with_another_model_is_refused(tmp_path, mnist_npz):
    out = tmp_path / "run"
    assert run_cli("train_mnist.py", *TINY, "--data", str(mnist_npz), "--out", str(out),
                   "--kimg", "0.016").returncode == 0
    result = run_cli("train_mnist.py", *TINY, "--data", str(mnist_npz), "--out", str(out), "--kimg", "0.032",
                     "--resume", "auto", "--set", "enc_dim=64")
    assert result.returncode == 2
    assert "another model" in result.stderr and "enc_dim" in result.stderr


def test_the_run_s_networks_are_freed_before_the_command_returns():
    """DDP keeps gloo's worker threads alive until its networks are freed; freed at interpreter shutdown instead,
    a worker aborted the process now and then (the torchrun test failed in CI). The networks sit in reference
    cycles, so only a collection frees them: the command must run one before it returns."""
    from biglearn.cli import run_training

    class Networks:
        pass

    alive = []

    def train(cfg):
        nets = Networks()
        nets.cycle = nets
        alive.append(weakref.ref(nets))

    gc.disable()  # a collection that happens to run during the test would hide a missing one
    try:
        assert run_training(train, cfg=None, dry_run=False) == 0
        assert alive[0]() is None
    finally:
        gc.enable()


def test_a_run_starts_from_an_export_with_a_fresh_d_warmed_up(tmp_path, mnist_npz):
    """init_from: how a campaign whose run folder is gone goes on. G comes from the export, D is new (here even of
    another kind: two scales), and during d_warmup_kimg only D learns."""
    first = tmp_path / "first"
    assert run_cli("train_mnist.py", *TINY, "--data", str(mnist_npz), "--out", str(first),
                   "--kimg", "0.032").returncode == 0
    second = tmp_path / "second"
    result = run_cli("train_mnist.py", *TINY, "--data", str(mnist_npz), "--out", str(second), "--kimg", "0.032",
                     "--set", f"init_from={first / 'export'}", "--set", "d_warmup_kimg=0.032", "--set", "d_scales=2")
    assert result.returncode == 0, result.stderr
    assert f"with G from {first / 'export'} (exported by a run at 0.032 kimg), a fresh D" in result.stdout
    assert "D warm-up, G frozen" in result.stdout and "ETA of this phase" in result.stdout
    assert result.stdout.count("D warm-up done") == 1  # a verdict on the fresh D when its phase ends
    stats = [json.loads(line) for line in (second / "stats.jsonl").read_text().splitlines()]
    assert all(row["J1"] > 0 and row["L1"] == row["L2"] == row["L3"] == 0 for row in stats)
    exported = load_file(first / "export" / "model.safetensors")
    state = torch.load(list_checkpoints(second)[-1], weights_only=True)
    for key in ("G", "G_ema"):  # G frozen all along: still the export's weights
        assert all(torch.equal(state[key][k], v.float()) for k, v in exported.items()), key
    assert any(k.startswith("coarse.") for k in state["D"])
    # the GAN takes over after the warm-up, from the same start (resumed: init_from is not read again)
    result = run_cli("train_mnist.py", "--out", str(second), "--resume", "auto", "--kimg", "0.064",
                     "--data", str(mnist_npz))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (second / "stats.jsonl").read_text().splitlines()]
    assert rows[-1]["L1"] > 0 and "with G from" not in result.stdout and "ETA of this phase" not in result.stdout
    assert "D warm-up done" not in result.stdout


def test_an_export_of_another_g_is_refused(tmp_path, mnist_npz):
    first = tmp_path / "first"
    assert run_cli("train_mnist.py", *TINY, "--data", str(mnist_npz), "--out", str(first),
                   "--kimg", "0.016").returncode == 0
    result = run_cli("train_mnist.py", *TINY, "--set", "enc_dim=48", "--data", str(mnist_npz),
                     "--out", str(tmp_path / "second"), "--set", f"init_from={first / 'export'}", "--kimg", "0.016")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "enc_dim: checkpoint 32 vs requested 48" in result.stderr
    result = run_cli("train_mnist.py", *TINY, "--data", str(mnist_npz), "--out", str(tmp_path / "third"),
                     "--set", "init_from=no-such-model", "--kimg", "0.016")
    assert result.returncode == 2 and "no checkpoint named 'no-such-model'" in result.stderr


@pytest.mark.parametrize("loss, verdict", [(1.24, "D warm-up done: D's loss on pair 1 1.240"),
                                           (1.39, "D warm-up done, but D has not left chance")])
def test_the_end_of_a_d_warm_up_says_whether_d_left_chance(loss, verdict):
    assert d_warm_up_verdict({"J1": loss}).startswith(verdict)
