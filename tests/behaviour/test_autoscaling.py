"""Replicas scale up under concurrent load and back down when idle (short delays)."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import Traffic, b64, extra_app, golden, wait_until

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
    body = {"base64": [b64(dataset)] * 64}

    with extra_app(base_config, "autoscale", {"Classifier_mnist": FAST}) as app:
        assert app.replicas("Classifier_mnist") == 1

        def status() -> int:
            return requests.post(f"{app.url}/mnist", json=body, timeout=60).status_code

        with Traffic(status, threads=4) as load:
            wait_until(lambda: app.replicas("Classifier_mnist") >= 2, 90, what="scale-up")
        wait_until(lambda: app.replicas("Classifier_mnist") == 1, 90, what="scale-down")
    assert load.results and set(load.results) == {200}
