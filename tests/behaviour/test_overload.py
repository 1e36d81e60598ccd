"""Overload answers fast: bounded queues give 429 + Retry-After, slow requests give 408.

A deliberately slow *model* (a wide network, hot-loaded through user_config into a private
copy of the app) makes replicas busy without any test hook in the service code.
"""

from __future__ import annotations

import concurrent.futures as cf

import pytest
import requests

from tests.helpers import b64, extra_app, golden
from training.export import export
from training.model import Net, save_checkpoint

pytestmark = pytest.mark.ray
# One 16-image request is one chunk, one call and one forward pass of the slow model.
ONE_CHUNK = {"chunk_size": 16}


@pytest.fixture(scope="module")
def slow_checkpoint(tmp_path_factory) -> str:
    arch = {"channels": [512, 1024], "hidden": 8, "dropout": 0.0, "num_classes": 10}
    path = tmp_path_factory.mktemp("slow") / "slow.pt"
    # Saved as an "mnist" model: same labels as the served one, so the hot swap accepts it.
    save_checkpoint(path, Net(**arch), arch, "mnist", test_accuracy=0.1)
    export(path)  # replicas serve the ONNX export
    return str(path)


def _body(n: int) -> dict:
    return {"base64": [b64(golden("mnist")[0][0])] * n}


def test_full_queue_answers_429_with_retry_after(base_config, slow_checkpoint):
    tight = {"max_ongoing_requests": 1, "max_queued_requests": 1,
             "autoscaling_config": {"min_replicas": 1, "max_replicas": 1},
             "user_config": {"checkpoint": slow_checkpoint, "max_batch_size": 16}}
    with extra_app(base_config, "overload", {"Classifier_mnist": tight}, ONE_CHUNK) as app:
        with cf.ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(
                lambda _: requests.post(f"{app.url}/mnist", json=_body(16), timeout=120),
                range(8)))
    codes = [r.status_code for r in responses]
    assert 429 in codes and 200 in codes and set(codes) <= {200, 429}, codes
    rejected = next(r for r in responses if r.status_code == 429)
    assert int(rejected.headers["Retry-After"]) >= 1
    assert rejected.json()["error"]["code"] == "overloaded"


def test_request_over_the_timeout_answers_408(base_config, slow_checkpoint):
    timeout = base_config["http_options"]["request_timeout_s"]
    slow = {"user_config": {"checkpoint": slow_checkpoint, "max_batch_size": 16},
            "autoscaling_config": {"min_replicas": 1, "max_replicas": 1}}
    with extra_app(base_config, "slow", {"Classifier_mnist": slow}, ONE_CHUNK) as app:
        # 256 images through the wide model take several times request_timeout_s.
        resp = requests.post(f"{app.url}/mnist", json=_body(256), timeout=timeout * 4)
    assert resp.status_code == 408, resp.text[:200]
