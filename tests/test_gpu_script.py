"""A CPU rehearsal of train/gpu_run.sh, so that a lent GPU's few minutes are never lost to a plumbing error."""
import json
import os
import subprocess
import sys

from conftest import REPO


def test_gpu_script_rehearsal_on_cpu(tmp_path, mnist_npz):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "BUDGET_S": "400", "DEVICE": "cpu", "BENCH_PRESET": "tiny",
           "DEMO_PRESET": "tiny", "TRAIN_PRESET": "tiny", "PRECISION": "fp32", "KIMG": "0.064",
           "MNIST_DATA": str(mnist_npz),
           "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    # The training run writes under runs/ of the working directory: a scratch copy of the layout keeps the
    # repository's runs/ untouched.
    work = tmp_path / "work"
    work.mkdir()
    (work / "train").symlink_to(REPO / "train")
    (work / "biglearn").symlink_to(REPO / "biglearn")
    result = subprocess.run(["bash", str(REPO / "train" / "gpu_run.sh")], cwd=work, env=env, capture_output=True,
                            text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "did not finish" not in log and "training mnist failed" not in log, log
    assert "checkpoint check failed" not in log and '"digits-multimodal"' in log, log
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bench-celeba-demo.json", "bench-celeba.json", "bench-mnist-ddp.json", "bench-mnist.json",
                     "log.txt", "mnist-model.safetensors", "mnist-run.tar", "profile-celeba.txt"], names
    assert len(names) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in out.iterdir())
    assert "ddp_overhead" in json.loads((out / "bench-mnist-ddp.json").read_text())
    celeba = json.loads((out / "bench-celeba.json").read_text())
    variants = {"variant r1_every=16", "variant r1_every=16,compile_mode=reduce-overhead"}
    assert {"eager_fp32", "fast", *variants} <= set(celeba), celeba
    assert "aten::" in (out / "profile-celeba.txt").read_text()
