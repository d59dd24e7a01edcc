"""The training benchmark runs end to end on the CPU, DDP and profile variants included (GPU figures: docs)."""
import json

import pytest
import torch

from biglearn import bench
from biglearn.bench import amortized_flops_per_image, count_flops_per_image, main
from biglearn.config import apply_overrides, preset
from biglearn.step import PHASES


def test_bench_reports_plain_ddp_variants_and_profile(tmp_path, monkeypatch):
    out, table = tmp_path / "bench.json", tmp_path / "profile.txt"
    timing = bench.time_training

    def failing_for_r1_every_3(cfg, *args, **kwargs):  # as a variant that breaks on the device would (CUDA graphs)
        if cfg.r1_every == 3:
            raise RuntimeError("no-such-mode")
        return timing(cfg, *args, **kwargs)
    monkeypatch.setattr(bench, "time_training", failing_for_r1_every_3)
    main(["--dataset", "mnist", "--preset", "tiny", "--device", "cpu", "--iters", "2", "--warmup", "1",
          "--no-inference", "--ddp", "--profile", str(table), "--json", str(out), "--set", "r1_every=2",
          "--variant", "r1_every=4", "--variant", "r1_every=3"])
    report = json.loads(out.read_text())
    for run in ("eager_fp32", "fast", "ddp_1_process", "variant r1_every=4"):
        assert report[run]["finite"] and report[run]["img_per_s"] > 0, run
    assert report["flops_per_image"] > 0
    # how DDP compares with the plain step (not a bound on it: two-step timings on a busy CPU swing tenfold)
    ratio = report["ddp_1_process"]["img_per_s"] / report["fast"]["img_per_s"]
    assert report["ddp_overhead"] == pytest.approx(1 - ratio)
    assert report["variant r1_every=4"]["speedup_over_fast"] > 0
    # A variant that fails is recorded and does not void the others.
    assert "no-such-mode" in report["variant r1_every=3"]["error"]
    # Every phase of the step shows up in the profile (R1 runs in one of the profiled steps 3, 4, 5).
    assert all(report["fast"]["phases"][name]["cpu_ms"] > 0 for name in PHASES), report["fast"]["phases"]
    text = table.read_text()
    assert all(name in text for name in PHASES) and "aten::" in text  # phases, then operators by time


def test_lazy_r1_is_timed_over_whole_periods(tmp_path):
    out = tmp_path / "bench.json"
    main(["--dataset", "mnist", "--preset", "tiny", "--device", "cpu", "--iters", "2", "--warmup", "1",
          "--no-inference", "--no-reference", "--json", str(out), "--variant", "r1_every=3"])
    report = json.loads(out.read_text())
    assert report["fast"]["iters"] == 2
    assert report["variant r1_every=3"]["iters"] == 3  # so that exactly one timed step runs R1


def test_inference_latency_is_reported_for_both_precisions(tmp_path):
    out = tmp_path / "inference.json"
    main(["--dataset", "celeba", "--preset", "tiny", "--device", "cpu", "--inference-only", "--json", str(out)])
    report = json.loads(out.read_text())
    for key in ("cpu_ms_1", "cpu_ms_10", "cpu_bf16_ms_1", "cpu_bf16_ms_10"):
        assert report[key] > 0, key


def test_lazy_r1_flops_are_averaged_over_the_period():
    cpu = torch.device("cpu")
    lazy = apply_overrides(preset("mnist", "tiny"), ["r1_every=4"])
    with_r1, without = count_flops_per_image(lazy, cpu), count_flops_per_image(lazy, cpu, step_index=1)
    assert without < with_r1  # R1's double backward is counted
    assert amortized_flops_per_image(lazy, cpu) == pytest.approx((with_r1 + 3 * without) / 4)
    assert amortized_flops_per_image(preset("mnist", "tiny"), cpu) == with_r1


def test_checkpoint_check_compares_every_shipped_model(tmp_path):
    out = tmp_path / "checkpoints.json"
    main(["--checkpoints", "--device", "cpu", "--json", str(out)])
    report = json.loads(out.read_text())["checkpoints"]
    assert set(report) == {"celeba", "mnist", "digits-multimodal"}
    # CPU against CPU: the same numbers (on a GPU the JSON shows how far it moves them)
    assert report["celeba"]["max_abs_diff"] == report["mnist"]["max_abs_diff"] == 0.0
    assert report["digits-multimodal"]["classify_max_abs_diff"] == 0.0 and report["digits-multimodal"]["same_labels"]


def test_a_profile_that_cannot_be_written_keeps_the_timing(tmp_path):
    out, blocked = tmp_path / "bench.json", tmp_path / "a-file"
    blocked.write_text("not a folder")
    main(["--dataset", "mnist", "--preset", "tiny", "--device", "cpu", "--iters", "1", "--warmup", "1",
          "--no-inference", "--no-reference", "--json", str(out), "--profile", str(blocked / "profile.txt")])
    fast = json.loads(out.read_text())["fast"]
    assert fast["img_per_s"] > 0 and "profile_error" in fast


@pytest.mark.parametrize("argv,expected", [
    (["--preset", "huge"], "unknown preset 'huge' for celeba"),
    (["--dataset", "mnist", "--preset", "tiny", "--variant", "r1_evry=16"], "unknown config key 'r1_evry'"),
    (["--dataset", "mnist", "--preset", "tiny", "--iters", "0"], "--iters must be at least 1"),
    (["--dataset", "mnist", "--preset", "tiny", "--device", "banana"], "unknown device"),
    (["--dataset", "mnist", "--preset", "demo", "--batch", "6"], "not a multiple of d_mbstd_group"),
])
def test_bad_arguments_fail_at_once_with_a_message(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and expected in capsys.readouterr().err


def test_digits_bench_times_an_untrained_shape_on_the_shipped_tokenizer(capsys):
    from biglearn.multimodal import bench as digits_bench
    digits_bench.main(["--shape", "32x1x2", "--preset", "tiny", "--reps", "1"])
    report = json.loads(capsys.readouterr().out)
    assert report["shape"] == "32x1x2" and report["transformer params M"] < 0.1
    assert all(report[key] > 0 for key in ("classify 1 ms", "generate 1 ms", "app generate 16 ms", "train img/s"))
    with pytest.raises(SystemExit):
        digits_bench.main(["--shape", "192x4"])
