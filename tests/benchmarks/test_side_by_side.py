"""benchmarks/side_by_side.py without a benchmark run: the floor sits beside the service under
the same settings, and each target is a ratio within one round."""

from __future__ import annotations

from ray.serve.schema import ServeDeploySchema

from benchmarks.servers import floor_config
from benchmarks.side_by_side import FLOOR_PREFIX, combined_config, ratios
from vision_core.serve_config import for_host, load


def test_the_floor_is_a_second_application_of_the_services_instance(tmp_path) -> None:
    combined = load(combined_config(tmp_path))
    ServeDeploySchema.model_validate(combined)  # what `serve run` checks first
    ours = for_host(load(), "127.0.0.1")
    service, floor = combined["applications"]
    assert service == ours["applications"][0]
    assert {k: v for k, v in combined.items() if k != "applications"} == \
        {k: v for k, v in ours.items() if k != "applications"}
    alone = load(floor_config(tmp_path))["applications"][0]
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
