"""Markdown table, target ratios and a PNG plot for a benchmark run."""

from __future__ import annotations

import json
import operator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vision_core.paths import ROOT  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _find(rows, run, c):
    return next((r for r in rows if r["run"] == run and r["c"] == c), None)


# The three load targets, measured by both phases: (name, wanted).
SINGLE_P50 = ("single 28x28 p50 at c=1 minus the floor's (ms)", "<= 1.2")
SINGLE_C32 = ("single req/s at c=32 / seed", ">= 1.2")
CANVAS_P50 = ("canvas p50 at c=1 / floor p50 at c=1", "<= 4")


_COMPARE = {"<=": operator.le, ">=": operator.ge}


def _met(value: float | None, wanted: str) -> bool | None:
    """Whether `value` meets `wanted`, a comparison and a number such as "<= 1.2"."""
    if value is None:
        return None
    op, threshold = wanted.split()
    return _COMPARE[op](value, float(threshold))


def targets(rows: list[dict], info: dict) -> list[tuple[str, float, str, bool | None]]:
    """(name, measured, wanted, met) for issue 13's targets, every ratio within this run."""
    if "ceiling_img_s_all_cores" not in info:
        return []

    def val(run: str, c: int, key: str) -> float | None:
        row = _find(rows, run, c)
        return row[key] if row else None

    def best(run: str) -> float | None:
        return max((r["img_s"] for r in rows if r["run"] == run), default=None)

    floor1 = val("floor single", 1, "p50_ms")
    checks = [
        (SINGLE_P50[0], _sub(val("serve single", 1, "p50_ms"), floor1), SINGLE_P50[1]),
        (SINGLE_C32[0], _div(val("serve single", 32, "req_s"), val("seed single", 32, "req_s")),
         SINGLE_C32[1]),
        (CANVAS_P50[0], _div(val("serve canvas", 1, "p50_ms"), floor1), CANVAS_P50[1]),
        ("64-image img/s / all-core ceiling", _div(best("serve batch64"),
                                                   info["ceiling_img_s_all_cores"]), ">= 0.85"),
        ("64-image img/s / seed img/s (best of each)", _div(best("serve batch64"),
                                                            best("seed single")), ">= 5"),
        ("cold start to first 200 (s)", info.get("serve_cold_start_s"), "<= 10"),
        ("PSS of the whole service after load (GB)",
         _div(info.get("serve_pss_after_load_mb"), 1000 / 1.048576), "<= 2.5"),
    ]
    out = []
    for name, value, wanted in checks:
        out.append((name, None if value is None else round(value, 2), wanted,
                    _met(value, wanted)))
    # No target, shown for context: the seed against the floor, the two ceilings.
    out.append(("floor single req/s at c=32 / seed", _round(_div(
        val("floor single", 32, "req_s"), val("seed single", 32, "req_s"))), "(none)", None))
    out.append(("cold start minus the floor's (s)", _round(_sub(
        info.get("serve_cold_start_s"), info.get("floor_cold_start_s"))), "(none)", None))
    out.append(("serve single p50 at c=1 / seed", _round(_div(
        val("serve single", 1, "p50_ms"), val("seed single", 1, "p50_ms"))), "(none)", None))
    # The 64-image target is judged on PNGs; tensors skip decoding, the binary ones JSON too.
    for run, what in (("oip64", "OIP JSON"), ("oipbin64", "OIP binary")):
        out.append((f"64-image {what} tensor img/s / all-core ceiling", _round(_div(
            best(f"serve {run}"), info["ceiling_img_s_all_cores"])), "(none)", None))
    return out


# benchmarks/side_by_side.py's ratios -> issue 13's targets they measure.
SIDE_BY_SIDE = {"single_p50_minus_floor_ms": SINGLE_P50, "single_c32_over_seed": SINGLE_C32,
                "canvas_p50_over_floor": CANVAS_P50}


def side_by_side_targets(info: dict) -> list[tuple[str, float, list[float], str, bool]]:
    """(name, median, per round, wanted, met) for the targets the side-by-side phase measured."""
    found = (info.get("side_by_side") or {}).get("targets", {})
    out = []
    for key, (name, wanted) in SIDE_BY_SIDE.items():
        if key in found:
            median = found[key]["median"]
            out.append((name, median, found[key]["per_round"], wanted, _met(median, wanted)))
    return out


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def write(rows: list[dict], info: dict, folder: Path, name: str = "serve") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cols = ["run", "c", "req_s", "img_s", "p50_ms", "p90_ms", "p99_ms", "errors",
            "cpu_s_per_1k_img"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(k)) for k in cols) + " |" for r in rows]
    lines += ["", "| target | measured | wanted | met |", "|---|---|---|---|"]
    lines += [f"| {n} | {v} | {t} | {'-' if ok is None else 'yes' if ok else 'NO'} |"
              for n, v, t, ok in targets(rows, info)]
    side = side_by_side_targets(info)
    if side:
        lines += ["", f"Side by side: the seed, the floor and the service measured in turns, "
                      f"{info['side_by_side']['rounds']} rounds (benchmarks/side_by_side.py); "
                      "the median of the rounds' ratios", "",
                  "| target | median | per round | wanted | met |", "|---|---|---|---|---|"]
        lines += [f"| {n} | {m} | {', '.join(map(str, per))} | {t} | {'yes' if ok else 'NO'} |"
                  for n, m, per, t, ok in side]
    for label in ("serve", "floor", "seed"):
        memory = info.get(f"{label}_memory_by_process")
        if memory:
            lines += ["", f"{label}: PSS after load, by process", "",
                      "| process | count | PSS MB |", "|---|---|---|"]
            lines += [f"| {k} | {m['processes']} | {m['pss_mb']} |" for k, m in memory.items()]
    lines += ["", "```json", json.dumps(info, indent=2), "```"]
    (folder / f"{name}.md").write_text("\n".join(lines) + "\n")
    (folder / f"{name}.json").write_text(json.dumps({"rows": rows, "info": info}, indent=2))

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for run in dict.fromkeys(r["run"] for r in rows):
        pts = [r for r in rows if r["run"] == run]
        ax1.plot([r["c"] for r in pts], [r["img_s"] for r in pts], marker="o", label=run)
        ax2.plot([r["c"] for r in pts], [r["p50_ms"] for r in pts], marker="o", label=run)
    if "ceiling_img_s_all_cores" in info:
        ax1.axhline(info["ceiling_img_s_all_cores"], ls="--", c="grey",
                    label="compute ceiling, all cores")
    for ax, title in ((ax1, "images/s"), (ax2, "p50 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax2.set_yscale("log")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / f"{name}.png", dpi=110)
