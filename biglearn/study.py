"""Compare training runs by their snapshot measures: `python -m biglearn.study RUNS [--marks 20,40] [--out DIR]`.

RUNS is a folder of run folders (each with a `stats.jsonl`), named `<variant>-s<seed>`. For every snapshot measure
(`metrics/snapshot.py`: joint entropy, confidence and spread; completion agreement and spread at S-ratio 0.5) it
prints a Markdown table, one row per run, one column per kimg mark (the snapshot nearest each mark), and with --out
writes the same tables to `study.md` and one curve per measure to `study-<measure>.png`. `plot_run` draws one run's
curves into its own folder (`probe.png`); the trainer calls it at every snapshot.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from biglearn.figures import line_plot

MEASURES = {  # name in stats.jsonl -> what it is, and which way is better
    "joint_entropy": "joint class entropy (nats; 2.30 = all ten digits), higher is better",
    "joint_confidence": "joint classifier confidence, higher is better",
    "joint_spread": "joint spread across noises, higher = z used",
    "completion_agreement": "completion label agreement at r = 0.5, higher is better",
    "completion_spread": "completion spread across noises at r = 0.5, higher = z used",
    "completion_roughness": "roughness of the generated pixels at r = 0.5 / the real image's (1 = as smooth; "
                            "speckle > 1)",
}


def snapshots(run: Path) -> list[dict]:
    """The rows of a run's stats.jsonl that carry snapshot measures, in kimg order."""
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines() if line.strip()]
    return sorted((r for r in rows if "joint_spread" in r), key=lambda r: r["kimg"])


def at_mark(rows: list[dict], mark: float, tolerance: float) -> dict | None:
    """The snapshot nearest `mark` kimg, if one lies within `tolerance`."""
    near = [r for r in rows if abs(r["kimg"] - mark) <= tolerance]
    return min(near, key=lambda r: abs(r["kimg"] - mark)) if near else None


def run_key(name: str) -> tuple[str, int]:
    """'latent1-s0' -> ('latent1', 0); names without a seed suffix sort as seed -1."""
    match = re.fullmatch(r"(.*)-s(\d+)", name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def tables(runs: dict[str, list[dict]], marks: list[float], tolerance: float) -> str:
    lines = []
    for measure, what in MEASURES.items():
        if not any(measure in r for rows in runs.values() for r in rows):
            continue
        lines += [f"### {measure}: {what}", "", "| run | " + " | ".join(f"{m:g} kimg" for m in marks) + " |",
                  "|---|" + "---|" * len(marks)]
        for name, rows in runs.items():
            cells = []
            for mark in marks:
                row = at_mark(rows, mark, tolerance)
                cells.append(f"{row[measure]:.3f}" if row and measure in row else "")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_curves(runs: dict[str, list[dict]], measure: str, path: Path, title: str) -> None:
    series = {name: ([r["kimg"] for r in rows if measure in r], [r[measure] for r in rows if measure in r])
              for name, rows in runs.items()}
    series = {name: xy for name, xy in series.items() if xy[0]}
    if series:
        line_plot(series, path, title=title, xlabel="kimg", ylabel=measure)


def plot_run(run: Path) -> None:
    """The run's snapshot measures against kimg, in one picture: `probe.png` in the run folder."""
    rows = snapshots(run)
    series = {m: ([r["kimg"] for r in rows if m in r], [r[m] for r in rows if m in r]) for m in MEASURES}
    series = {m: xy for m, xy in series.items() if xy[0]}
    if series:
        line_plot(series, run / "probe.png", title=f"{run.name}: snapshot measures", xlabel="kimg",
                  ylabel="value")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="a folder of run folders")
    parser.add_argument("--marks", default="20,40,60,80,100", help="kimg marks, comma-separated")
    parser.add_argument("--tolerance", type=float, default=2.5, help="how far (kimg) a snapshot may be from a mark")
    parser.add_argument("--out", type=Path, help="write study.md and study-<measure>.png here")
    args = parser.parse_args(argv)
    folders = sorted((p for p in args.runs.iterdir() if (p / "stats.jsonl").exists()), key=lambda p: run_key(p.name))
    if not folders:
        print(f"no run folders with stats.jsonl in {args.runs}", file=sys.stderr)
        return 2
    runs = {p.name: snapshots(p) for p in folders}
    marks = [float(m) for m in args.marks.split(",")]
    text = tables(runs, marks, args.tolerance)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "study.md").write_text(text)
        for measure, what in MEASURES.items():
            plot_curves(runs, measure, args.out / f"study-{measure}.png", what)
    return 0


if __name__ == "__main__":
    sys.exit(main())
