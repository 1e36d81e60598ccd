"""benchmarks/side_by_side.py without a benchmark run: the floor sits beside the service under
the same settings, and each target is a ratio within one round."""

from __future__ import annotations

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from benchmarks.report import side_by_side_targets
from benchmarks.serve_bench import floor_config
from benchmarks.side_by_side import FLOOR_PREFIX, combined_config, ratios
from tests.conftest import SERVE_CONFIG


def test_the_floor_is_a_second_application_of_the_services_instance(tmp_path) -> None:
    combined = yaml.safe_load(combined_config(tmp_path).read_text())
    ServeDeploySchema.model_validate(combined)  # what `serve run` checks first
    ours = yaml.safe_load(SERVE_CONFIG.read_text())
    service, floor = combined["applications"]
    assert service == ours["applications"][0]
    assert {k: v for k, v in combined.items() if k != "applications"} == \
        {k: v for k, v in ours.items() if k != "applications"}
    alone = yaml.safe_load(floor_config(tmp_path).read_text())["applications"][0]
    assert floor == {**alone, "route_prefix": FLOOR_PREFIX}
    assert floor["name"] != service["name"] and service["route_prefix"] == "/"


def _round(seed1=2.0, floor1=3.0, serve1=4.5, canvas1=10.5, seed32=200.0, serve32=300.0):
    row = lambda p50=0.0, req_s=0.0: {"p50_ms": p50, "req_s": req_s}  # noqa: E731
    return {("seed", "single", 1): row(seed1), ("floor", "single", 1): row(floor1),
            ("serve", "single", 1): row(serve1), ("serve", "canvas", 1): row(canvas1),
            ("seed", "single", 32): row(req_s=seed32), ("serve", "single", 32): row(req_s=serve32)}


def test_each_target_is_a_ratio_within_its_round() -> None:
    # The machine halves its speed in round 2: within-round ratios stay where they were.
    got = ratios([_round(), _round(floor1=6.0, serve1=9.0, canvas1=21.0, seed32=100,
                                   serve32=150)])
    assert got["single_p50_minus_floor_ms"] == [1.5, 3.0]
    assert got["canvas_p50_over_floor"] == [3.5, 3.5]
    assert got["single_c32_over_seed"] == [1.5, 1.5]


@pytest.mark.parametrize("median, met", [(3.9, True), (4.1, False)])
def test_the_report_judges_the_median(median, met) -> None:
    info = {"side_by_side": {"rounds": 3, "targets": {
        "canvas_p50_over_floor": {"per_round": [3.0, median, 9.0], "median": median}}}}
    (name, got, per_round, wanted, ok), = side_by_side_targets(info)
    assert name.startswith("canvas p50") and (got, ok, wanted) == (median, met, "<= 4")
    assert per_round == [3.0, median, 9.0]
    assert side_by_side_targets({}) == []
