"""report.md for `python -m biglearn.evaluate`: the metrics.json numbers as tables a model card can quote."""
from __future__ import annotations

from pathlib import Path


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    def cell(value) -> str:  # a "|" inside a cell (as in p(y | x)) would end it
        return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


# The model-free completions (metrics/nearest.py) as the report's rows and the evaluator's plots name them
REFERENCE_NAMES = {"source_only": "no model: S alone (T black)",
                   "nearest_training_image": "no model: T of the nearest training image"}


def _mnist_section(metrics: dict) -> list[str]:
    m, ratios = metrics["mnist"], metrics["ratios"]
    joint, floor, clf = m["joint"], m["real_floor"], m["classifier"]
    lines = ["## MNIST: classifier features and labels", "",
             f"Classifier `{clf['name']}` (test accuracy {clf['test_accuracy'] or float('nan'):.4f}; "
             f"{clf['accuracy_on_second_set']:.4f} on the second real set, the ceiling for agreement).", ""]
    rows = [[name, r["frechet"], r["kid"], r["entropy"], r["mean_max_prob"]]
            for name, r in (("joint samples", joint), ("real (floor)", floor))]
    lines += markdown_table(["set vs reference", "Fréchet distance", "KID", "class entropy (nats)", "mean max-prob"],
                            rows)
    lines += ["", "Predicted-class histogram of joint samples (digits 0-9): "
              + ", ".join(f"{p:.3f}" for p in joint["histogram"]), "",
              "Completion/label agreement:", ""]
    rows = [[f"{mode} S"] + values for mode, values in m["agreement"].items()]
    for name, by_mode in m.get("agreement_references", {}).items():
        rows += [[f"{mode} S, {REFERENCE_NAMES[name]}"] + values for mode, values in by_mode.items()]
    lines += markdown_table(["r"] + [f"{r:.1f}" for r in ratios], rows)
    if "agreement_references" in m:
        lines += ["", "The last rows complete the same S without a model: S alone with T black, and T copied from the "
                  "training image nearest on S (metrics/nearest.py); a model below the latter has not learnt to "
                  "continue the strokes it is shown."]
    if "at_half" in m:
        half = m["at_half"]
        lines += ["", "By digit, random S at r = 0.5 (which digits the completions lose, and what they become):", ""]
        lines += markdown_table(["digit"] + [str(d) for d in range(10)],
                                [["agreement"] + ["-" if v is None else v for v in half["agreement_by_digit"]],
                                 ["share read as it"] + half["read_as"], ["share of the set"] + half["true_share"]])
    return lines + [""]


def _swd_section(metrics: dict) -> list[str]:
    s, ratios = metrics["swd"], metrics["ratios"]
    floor = s["real_floor"]["average"]
    header = ["set vs reference"] + [f"{r} px" for r in s["resolutions"]] + ["average", "x floor"]

    def row(name: str, result: dict) -> list:
        return [name] + result["per_level"] + [result["average"], result["average"] / floor]
    rows = [row("real (floor)", s["real_floor"]), row("per-pixel Gaussian", s["gaussian_baseline"]),
            row("joint samples", s["joint"])]
    for mode, results in s["completion"].items():
        rows += [row(f"completions, {mode} S, r={r:.1f}", c) for r, c in zip(ratios, results)]
    for name, by_mode in s.get("completion_references", {}).items():
        rows += [row(f"{mode} S, r={r:.1f}, {REFERENCE_NAMES[name]}", c)
                 for mode, results in by_mode.items() for r, c in zip(ratios, results)]
    lines = ["## Sliced Wasserstein distance (x1e3, Laplacian pyramid, 7x7 neighbourhoods)", "",
             "Completions fill T of the second real set; S pixels are real, so SWD falls towards the floor as r grows.",
             ""]
    if s.get("completion_references"):
        lines += ["The last rows complete the same S without a model, T copied from the training image nearest on S "
                  "(metrics/nearest.py): real pixels on T, with the seams a lookup table leaves.", ""]
    return lines + markdown_table(header, rows) + [""]


def _diversity_section(metrics: dict) -> list[str]:
    d = metrics["diversity"]
    modes = list(d)
    header = ["r"] + [f"{name}, {mode} S" for mode in modes for name in ("diversity", "error")]
    rows = [[f"{r:.1f}"] + [d[mode][key][i] for mode in modes for key in ("diversity", "error")]
            for i, r in enumerate(metrics["ratios"])]
    first = d[modes[0]]
    lines = ["## Diversity vs S-ratio", "",
             f"K = {first['k']} noises for each of {first['images']} images; RMS distances on T in [0, 1] "
             "pixel units. " + "; ".join(f"Spearman rho ({mode} S) = {d[mode]['spearman_rho']:.3f}" for mode in modes)
             + ".", ""]
    return lines + markdown_table(header, rows) + [""]


def write_report(metrics: dict, path: Path) -> None:
    info = metrics.get("checkpoint_info", {})
    lines = [f"# Evaluation of `{metrics['checkpoint']}`", "",
             f"Dataset {metrics['dataset']} ({metrics['data']}, split {metrics['split']}), {metrics['n']} images per "
             f"set, device {metrics['device']}, {metrics['seconds']['total']:.0f} s. "
             f"Checkpoint: preset {info.get('preset', '?')}, {info.get('kimg', '?')} kimg.", "",
             "## Targets (issue 3)", ""]
    lines += markdown_table(["measure", "value", "target", "met"],
                            [[t["name"], t["value"], t["target"], "yes" if t["passed"] else "**no**"]
                             for t in metrics["targets"]])
    lines.append("")
    lines += _mnist_section(metrics) if "mnist" in metrics else _swd_section(metrics)
    lines += _diversity_section(metrics)
    lines += ["## Figures", ""]
    for fig in metrics["figures"]:
        note = "" if fig["committable"] else f" (shows {fig['shows']} images: keep out of the repo)"
        lines += [f"- {fig['what']}{note}: `{fig['file']}`", "", f"  ![{fig['file']}]({fig['file']})", ""]
    path.write_text("\n".join(lines))
