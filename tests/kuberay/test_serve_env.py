"""config/serve.env is what every runtime uses: the Dockerfile and the RayService pods."""

from __future__ import annotations

import re

import yaml

from serve_app.settings import serve_env
from tests.kuberay.conftest import KUBERAY
from training.paths import ROOT


def test_dockerfile_sets_serve_env():
    text = (ROOT / "Dockerfile").read_text()
    for key, value in serve_env().items():
        assert re.search(rf"\b{key}={re.escape(value)}\b", text), f"Dockerfile lacks {key}"


def test_every_ray_pod_of_the_service_sets_serve_env():
    service = yaml.safe_load((KUBERAY / "ray-service.yaml").read_text())
    cluster = service["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            assert {k: env.get(k) for k in serve_env()} == serve_env(), container["name"]


def test_makefile_serves_with_serve_env():
    assert ". config/serve.env" in (ROOT / "Makefile").read_text()
