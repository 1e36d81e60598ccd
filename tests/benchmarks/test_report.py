"""benchmarks/report.py: the targets are computed from one run's rows, and judged on the median
of the side-by-side rounds."""

from __future__ import annotations

import pytest

from benchmarks.report import side_by_side_targets, targets


def _row(run, c, **values) -> dict:
    return {"run": run, "c": c, "req_s": 0, "img_s": 0, "p50_ms": 0, **values}


def test_targets_are_ratios_within_the_run() -> None:
    rows = [_row("floor single", 1, p50_ms=1.5), _row("seed single", 32, req_s=500, img_s=500),
            _row("serve single", 1, p50_ms=2.5), _row("serve single", 32, req_s=650),
            _row("serve canvas", 1, p50_ms=7.0), _row("serve batch64", 4, img_s=2400),
            _row("serve oipbin64", 4, img_s=2700)]
    info = {"ceiling_img_s_all_cores": 3000, "serve_cold_start_s": 12.0,
            "serve_pss_after_load_mb": 2000}
    got = {name: (value, met) for name, value, _, met in targets(rows, info)}
    assert got["single 28x28 p50 at c=1 minus the floor's (ms)"] == (1.0, True)
    assert got["single req/s at c=32 / seed"] == (1.3, True)
    assert got["canvas p50 at c=1 / floor p50 at c=1"] == (4.67, False)
    assert got["64-image img/s / all-core ceiling"] == (0.8, False)
    assert got["64-image img/s / seed img/s (best of each)"] == (4.8, False)
    assert got["cold start to first 200 (s)"] == (12.0, False)
    assert got["PSS of the whole service after load (GB)"] == (2.1, True)
    # Context without a target: the tensor paths against the same ceiling; a run not measured
    # shows as missing, not as zero.
    assert got["64-image OIP binary tensor img/s / all-core ceiling"] == (0.9, None)
    assert got["64-image OIP JSON tensor img/s / all-core ceiling"] == (None, None)



@pytest.mark.parametrize("median, met", [(3.9, True), (4.1, False)])
def test_the_report_judges_the_median(median, met) -> None:
    info = {"side_by_side": {"rounds": 3, "targets": {
        "canvas_p50_over_floor": {"per_round": [3.0, median, 9.0], "median": median}}}}
    (name, got, per_round, wanted, ok), = side_by_side_targets(info)
    assert name.startswith("canvas p50") and (got, ok, wanted) == (median, met, "<= 4")
    assert per_round == [3.0, median, 9.0]
    assert side_by_side_targets({}) == []
