"""`make bench`'s pieces that can be checked without a benchmark run: Ray's floor is deployed
under the service's own settings, and the report computes the targets from one run's rows."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from benchmarks.report import targets
from benchmarks.serve_bench import Server, bodies, floor_config, process_kind
from tests.conftest import SERVE_CONFIG


def test_the_floor_runs_under_the_services_settings(tmp_path) -> None:
    floor = yaml.safe_load(floor_config(tmp_path).read_text())
    ServeDeploySchema.model_validate(floor)  # what `serve run` checks first
    ours = yaml.safe_load(SERVE_CONFIG.read_text())
    for key in ("controller_options", "http_options", "logging_config", "proxy_location"):
        assert floor[key] == ours[key]
    by_name = {d["name"]: d for d in ours["applications"][0]["deployments"]}
    ingress, leaf = floor["applications"][0]["deployments"]
    assert {**ingress, "name": "Ingress"} == by_name["Ingress"]
    assert "user_config" not in leaf
    assert leaf["autoscaling_config"] == by_name["Classifier_mnist"]["autoscaling_config"]


def test_the_floor_app_has_the_deployments_the_config_names() -> None:
    from benchmarks import floor_app

    names = {floor_app.app._bound_deployment.name,
             *(a._bound_deployment.name for a in floor_app.app._bound_deployment.init_args)}
    assert names == {"FloorIngress", "Leaf"}


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


def test_the_binary_tensor_body_is_what_the_service_parses() -> None:
    from serve_app import oip

    path, body, images, headers = bodies()["oipbin64"]
    parsed = oip.parse_infer(body, headers["Inference-Header-Content-Length"], 64)
    _, json_body, _, _ = bodies()["oip64"]
    assert path == "/v2/models/mnist/infer" and images == 64
    assert np.array_equal(parsed.pixels, oip.parse_infer(json_body, None, 64).pixels)


def test_processes_are_named_for_the_memory_breakdown() -> None:
    assert process_kind("ray::ServeReplica:vision:Classifier_mnist") == \
        "replica Classifier_mnist"
    assert process_kind("ray::ServeController") == "ray::ServeController"
    assert process_kind("/venv/lib/ray/core/src/ray/gcs/gcs_server --x=1") == "gcs_server"
    assert process_kind("/venv/bin/python /venv/bin/serve run config/serve.yaml") == \
        "serve run (driver)"


def test_a_server_refuses_a_port_something_already_holds() -> None:
    """A leftover (a `make serve`, an orphaned HAProxy) would answer in place of ours."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"already listens on 127.0.0.1:{port}"):
            Server([sys.executable, "-c", "pass"], f"http://127.0.0.1:{port}", ("/", b""))


def test_a_server_that_exits_fails_at_once_not_at_the_timeout() -> None:
    with socket.socket() as s:  # a port nothing listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RuntimeError, match="exited with code 3"):
        Server([sys.executable, "-c", "raise SystemExit(3)"], f"http://127.0.0.1:{port}",
               ("/", b""), timeout=60)
