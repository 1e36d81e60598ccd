"""Markdown table, target ratios and a PNG plot for a benchmark run."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _find(rows, run, c):
    return next((r for r in rows if r["run"] == run and r["c"] == c), None)


def targets(rows: list[dict], info: dict) -> list[tuple[str, float, str, bool]]:
    """(name, measured ratio, target, met) for the issue's targets, all within this run."""
    if "ceiling_img_s" not in info or not any(r["run"] == "serve batch64" for r in rows):
        return []
    seed_best = max(r["img_s"] for r in rows if r["run"] == "seed single")
    batch_best = max(r["img_s"] for r in rows if r["run"] == "serve batch64")
    single32, seed32 = _find(rows, "serve single", 32), _find(rows, "seed single", 32)
    single1, seed1 = _find(rows, "serve single", 1), _find(rows, "seed single", 1)
    out = [
        ("batch64 img/s / compute ceiling", batch_best / info["ceiling_img_s"], ">= 0.7"),
        ("batch64 img/s / seed img/s (best of each)", batch_best / seed_best, ">= 3"),
    ]
    if single32 and seed32:
        out.append(("single req/s at c=32 / seed", single32["req_s"] / seed32["req_s"], ">= 0.6"))
    if single1 and seed1:
        out.append(("single p50 at c=1 / seed", single1["p50_ms"] / seed1["p50_ms"], "<= 3"))
    out.append(("cold start (s)", info["serve_cold_start_s"], "<= 15"))
    met = [(n, round(v, 2), t, eval(f"{v} {t}")) for n, v, t in out]  # noqa: S307
    # No target, shown for honesty: a drawing goes through the Preprocess hop that
    # dataset-form images skip (benchmarks/NOTES.md, lever 14).
    canvas1, seed_canvas1 = _find(rows, "serve canvas", 1), _find(rows, "seed canvas", 1)
    canvas32, seed_canvas32 = _find(rows, "serve canvas", 32), _find(rows, "seed canvas", 32)
    if canvas1 and seed_canvas1:
        met.append(("canvas p50 at c=1 / seed canvas", round(
            canvas1["p50_ms"] / seed_canvas1["p50_ms"], 2), "(none)", None))
    if canvas32 and seed_canvas32:
        met.append(("canvas req/s at c=32 / seed canvas", round(
            canvas32["req_s"] / seed_canvas32["req_s"], 2), "(none)", None))
    return met


def write(rows: list[dict], info: dict, folder: Path, name: str = "serve") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cols = ["run", "c", "req_s", "img_s", "p50_ms", "p95_ms", "p99_ms", "errors",
            "cpu_s_per_1k_img"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(k)) for k in cols) + " |" for r in rows]
    lines += ["", "| target | measured | wanted | met |", "|---|---|---|---|"]
    lines += [f"| {n} | {v} | {t} | {'-' if ok is None else 'yes' if ok else 'NO'} |"
              for n, v, t, ok in targets(rows, info)]
    lines += ["", "```json", json.dumps(info, indent=2), "```"]
    (folder / f"{name}.md").write_text("\n".join(lines) + "\n")
    (folder / f"{name}.json").write_text(json.dumps({"rows": rows, "info": info}, indent=2))

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for run in dict.fromkeys(r["run"] for r in rows):
        pts = [r for r in rows if r["run"] == run]
        ax1.plot([r["c"] for r in pts], [r["img_s"] for r in pts], marker="o", label=run)
        ax2.plot([r["c"] for r in pts], [r["p50_ms"] for r in pts], marker="o", label=run)
    if "ceiling_img_s" in info:
        ax1.axhline(info["ceiling_img_s"], ls="--", c="grey", label="compute ceiling")
    for ax, title in ((ax1, "images/s"), (ax2, "p50 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax2.set_yscale("log")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / f"{name}.png", dpi=110)
