"""benchmarks/servers.py without a benchmark run: Ray's floor is deployed under the service's own
settings, processes are named for the memory breakdown, and a server never measures another's."""

from __future__ import annotations

import socket
import sys

import pytest
from ray.serve.schema import ServeDeploySchema

from benchmarks.servers import Server, floor_config, process_kind
from vision_core.serve_config import for_host, load


def test_the_floor_runs_under_the_services_settings(tmp_path) -> None:
    floor = load(floor_config(tmp_path))
    ServeDeploySchema.model_validate(floor)  # what `serve run` checks first
    ours = for_host(load(), "127.0.0.1")
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
