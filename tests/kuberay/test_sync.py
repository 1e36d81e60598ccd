"""kuberay/sync.py: serveConfigV2 is generated from config/serve.yaml and kept current."""

from __future__ import annotations

import importlib.util

from tests.kuberay.conftest import ROOT


def _sync():
    spec = importlib.util.spec_from_file_location("sync", ROOT / "kuberay" / "sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ray_service_is_in_sync_with_serve_yaml():
    sync = _sync()
    assert sync.rendered() == sync.SERVICE.read_text(), "run `make sync-kuberay`"


def test_only_the_host_differs():
    sync = _sync()
    block = sync.rendered().split("  serveConfigV2: |\n", 1)[1].split("\n  rayClusterConfig:")[0]
    served = [line[4:] for line in block.splitlines()]
    original = (ROOT / "config" / "serve.yaml").read_text().splitlines()
    diffs = [(a, b) for a, b in zip(served, original, strict=True) if a != b]
    assert len(diffs) == 1 and "host: 0.0.0.0" in diffs[0][0]
