"""Serve's process settings have one home, config/serve.yaml's `controller_options`.

They reach the controller, the proxies and every replica from there, so the runtimes that start
Serve from that file (the image, the RayService) must not repeat them: a copy would drift.
"""

from __future__ import annotations

import yaml

from tests.helpers import KUBERAY
from vision_core.paths import ROOT
from vision_core.serve_config import serve_env


def test_serve_yaml_names_the_throughput_settings():
    assert serve_env() == {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1",
                           "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH": "16777216"}


def test_the_ray_service_carries_them_in_its_serve_config_only():
    service = yaml.safe_load((KUBERAY / "ray-service.yaml").read_text())
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert serve_config["controller_options"]["runtime_env"]["env_vars"] == serve_env()
    cluster = service["spec"]["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        for container in group["template"]["spec"]["containers"]:
            names = {e["name"] for e in container.get("env", [])}
            assert not names & set(serve_env()), f"{container['name']} repeats {names}"


def test_the_image_and_make_serve_do_not_repeat_them():
    for path in ("Dockerfile", "Makefile"):
        text = (ROOT / path).read_text()
        assert not [key for key in serve_env() if key in text], path
