"""The optional API key (constant-time compare, JSON 401), and no secrets or image bytes in logs."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.helpers import TEST_KEY as KEY
from tests.helpers import TEST_KEY_ENV, b64, extra_app, golden

pytestmark = pytest.mark.ray


def test_api_key_guards_inference_and_never_reaches_the_logs(base_config):
    import ray

    body = {"base64": b64(golden("mnist")[0][0])}
    with extra_app(base_config, "locked", {}, args={"api_key_env": TEST_KEY_ENV}) as app:
        none = requests.post(f"{app.url}/mnist", json=body, timeout=30)
        wrong = requests.post(f"{app.url}/mnist", json=body, timeout=30,
                              headers={"Authorization": "Bearer nope"})
        bearer = requests.post(f"{app.url}/mnist", json=body, timeout=30,
                               headers={"Authorization": f"Bearer {KEY}"})
        header = requests.post(f"{app.url}/mnist", json=body, timeout=30,
                               headers={"X-API-Key": KEY})
        oip = requests.post(f"{app.url}/v2/models/mnist/infer", json={"inputs": []}, timeout=30)
        health = requests.get(f"{app.url}/healthz", timeout=30)
        # A corrupt image whose bytes are easy to find in a log, sent with the key.
        marker = b64(b"\x89PNG-LOG-MARKER-" + b"Z" * 64)
        requests.post(f"{app.url}/mnist", json={"base64": marker}, timeout=30,
                      headers={"Authorization": f"Bearer {KEY}"})

    for resp in (none, wrong, oip):
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    for resp in (none, wrong):
        assert resp.json()["error"]["code"] == "unauthorized"
    # The Open Inference Protocol's own error shape, with the same code beside it.
    assert oip.json() == {"error": none.json()["error"]["message"], "code": "unauthorized"}
    assert bearer.status_code == 200 and header.status_code == 200
    assert health.status_code == 200  # probes need no key

    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    for path in logs.rglob("*"):
        if path.is_file() and path.stat().st_size < 50 * 2**20:
            text = path.read_bytes()
            assert KEY.encode() not in text, f"API key in {path}"
            assert marker[:40].encode() not in text, f"image bytes in {path}"
