"""Replicas scale up under concurrent load and back down when idle (short delays)."""

from __future__ import annotations

import base64
import threading

import pytest
import requests

from tests.conftest import extra_app, golden, wait_until

pytestmark = pytest.mark.ray

FAST = {"autoscaling_config": {"min_replicas": 1, "max_replicas": 2,
                               "target_ongoing_requests": 1, "upscale_delay_s": 0.5,
                               "downscale_delay_s": 2, "look_back_period_s": 1}}


def test_classifier_scales_up_under_load_and_down_when_idle(base_config):
    # Dataset-form images cost Preprocess little, so the classifier is the busy stage: a full
    # chunk per request keeps each client's request at the classifier most of the time. (With
    # 280x280 drawings, Preprocess took most of each request and the classifier's mean load
    # could stay under the target of 1.)
    dataset = next(p for p, _ in golden("mnist") if p.name.split("_")[1] == "dataset")
    image = base64.b64encode(dataset.read_bytes()).decode()
    body = {"base64": [image] * 64}
    stop = threading.Event()
    statuses: list[int] = []

    with extra_app(base_config, "autoscale", {"Classifier_mnist": FAST}) as app:
        assert app.replicas("Classifier_mnist") == 1

        def load():
            while not stop.is_set():
                statuses.append(requests.post(f"{app.url}/mnist", json=body, timeout=60)
                                .status_code)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: app.replicas("Classifier_mnist") >= 2, 90, what="scale-up")
        finally:
            stop.set()
            for t in threads:
                t.join()
        wait_until(lambda: app.replicas("Classifier_mnist") == 1, 90, what="scale-down")
    assert statuses and set(statuses) == {200}
