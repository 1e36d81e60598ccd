"""kuberay/sync.py: serveConfigV2 is generated from config/serve.yaml and kept current.

This is the one check that the RayService serves what config/serve.yaml says.
"""

from __future__ import annotations

from kuberay import sync
from tests.helpers import serve_config_v2
from vision_core.serve_config import for_host


def test_serve_config_v2_is_config_serve_yaml_but_for_the_host(ray_service: dict,
                                                                serve_config: dict) -> None:
    assert sync.rendered() == sync.SERVICE.read_text(), "run `make sync-kuberay`"
    # The one difference, and why: in a pod the proxy must listen on the pod IP, not loopback.
    assert serve_config_v2(ray_service) == for_host(serve_config, "0.0.0.0")
    assert serve_config_v2(ray_service)["http_options"]["host"] == "0.0.0.0"
