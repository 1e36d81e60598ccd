"""kuberay/sync.py: serveConfigV2 is generated from config/serve.yaml and kept current.

This is the one check that the RayService serves what config/serve.yaml says.
"""

from __future__ import annotations

import copy
import importlib.util

from tests.kuberay.test_ray_service import serve_config_v2
from training.paths import ROOT


def _sync():
    spec = importlib.util.spec_from_file_location("sync", ROOT / "kuberay" / "sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_serve_config_v2_is_config_serve_yaml_but_for_the_host(ray_service: dict,
                                                                serve_config: dict) -> None:
    sync = _sync()
    assert sync.rendered() == sync.SERVICE.read_text(), "run `make sync-kuberay`"
    # The one difference, and why: in a pod the proxy must listen on the pod IP, not loopback.
    expected = copy.deepcopy(serve_config)
    expected["http_options"]["host"] = "0.0.0.0"
    assert serve_config_v2(ray_service) == expected
