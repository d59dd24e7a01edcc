"""The training benchmark runs end to end on the CPU, DDP and profile variants included (GPU figures: docs)."""
import json

from biglearn.bench import main


def test_bench_reports_plain_ddp_and_profile(tmp_path):
    out, table = tmp_path / "bench.json", tmp_path / "profile.txt"
    main(["--dataset", "mnist", "--preset", "tiny", "--device", "cpu", "--iters", "2", "--warmup", "1",
          "--no-inference", "--ddp", "--profile", str(table), "--json", str(out), "--set", "r1_every=2"])
    report = json.loads(out.read_text())
    for run in ("eager_fp32", "fast", "ddp_1_process"):
        assert report[run]["finite"] and report[run]["img_per_s"] > 0, run
    assert report["flops_per_image"] > 0
    assert -1 < report["ddp_overhead"] < 1
    assert "aten::" in table.read_text()  # an operator table, sorted by time


def test_inference_latency_is_reported_for_both_precisions(tmp_path):
    out = tmp_path / "inference.json"
    main(["--dataset", "celeba", "--preset", "tiny", "--device", "cpu", "--inference-only", "--json", str(out)])
    report = json.loads(out.read_text())
    for key in ("cpu_ms_1", "cpu_ms_10", "cpu_bf16_ms_1", "cpu_bf16_ms_10"):
        assert report[key] > 0, key
