"""The recipe-study table: snapshot measures of several runs at fixed kimg marks."""
import json

import pytest

from biglearn.figures import nice_ticks
from biglearn.study import main, plot_run


def write_run(folder, entropies):
    folder.mkdir(parents=True)
    rows = [{"kimg": 2.0, "step": 1, "J1": 1.0}]  # a tick without a snapshot
    rows += [{"kimg": 10.24 * (i + 1), "joint_spread": 0.1, "joint_entropy": e, "completion_agreement": 0.5 + e / 10}
             for i, e in enumerate(entropies)]
    (folder / "stats.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_study_tabulates_each_run_at_each_mark(tmp_path, capsys):
    write_run(tmp_path / "runs" / "baseline-s0", [0.1, 0.2])
    write_run(tmp_path / "runs" / "latent1-s0", [1.5, 1.9, 2.1])
    assert main([str(tmp_path / "runs"), "--marks", "10,20,30", "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "| baseline-s0 | 0.100 | 0.200 |  |" in text      # no snapshot near 30 kimg: an empty cell
    assert "| latent1-s0 | 1.500 | 1.900 | 2.100 |" in text
    assert "completion_spread" not in text                 # a measure no run has is left out
    assert (tmp_path / "out" / "study.md").read_text().strip() == text.strip()
    assert (tmp_path / "out" / "study-joint_entropy.png").stat().st_size > 0
    plot_run(tmp_path / "runs" / "latent1-s0")
    assert (tmp_path / "runs" / "latent1-s0" / "probe.png").exists()


def test_study_without_runs_says_so(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no run folders" in capsys.readouterr().err


@pytest.mark.parametrize("low,high,expected", [
    (10.08, 110.9, [20, 40, 60, 80, 100]),     # snapshots at 10.08 ... 110.9 kimg: round marks, none crowded
    (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1]),
    (-0.0001, 0.35, [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35]),
    (0, 3000, [0, 500, 1000, 1500, 2000, 2500, 3000]),
    (5, 5, [5]),
])
def test_plot_ticks_are_round_and_few(low, high, expected):
    ticks = nice_ticks(low, high)
    assert ticks == pytest.approx(expected) and len(ticks) <= 8
    assert all(str(t) != "-0.0" for t in ticks)
