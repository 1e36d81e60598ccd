"""Rolling out a new model, end to end, under constant load: a candidate is added in place (no
stable replica restarts), gets its sticky share of the traffic, and is rejected at the gate,
rolled back live, or promoted by itself, with no failed request throughout.

One private copy of the app serves the whole file; each test declares a candidate in its
Rollout deployment's user_config, as an operator would in config/serve.yaml.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import requests

from tests.helpers import (
    Traffic,
    alive_replicas,
    b64,
    candidate_checkpoint,
    extra_app,
    golden,
    wait_until,
)

pytestmark = pytest.mark.ray
NAME = "rollout"
# A short window keeps the file quick; the rule is the one config/serve.yaml runs.
RULE = {"min_requests": 150, "candidate_timeout_s": 10.0}
IMAGES = [p for p, _ in golden("mnist")]


@pytest.fixture(scope="module")
def app(base_config):
    with extra_app(base_config, NAME, {"Rollout": {"user_config": RULE}}) as app:
        yield app


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("candidates")
    return {k: candidate_checkpoint(folder, k)
            for k in ("good", "random", "permuted", "overeager")}


def declare(app, checkpoint: str | None, traffic: float = 0.5, **rule) -> None:
    candidates = {"mnist": {"checkpoint": checkpoint, "traffic": traffic}} if checkpoint else {}
    app.update({"Rollout": {"user_config": {**RULE, **rule, "candidates": candidates}}})


def rollout(app) -> dict:
    return requests.get(f"{app.url}/rollout", timeout=30).json()["models"]["mnist"]


def served(app) -> str:
    return next(m for m in requests.get(f"{app.url}/models", timeout=30).json()
                if m["name"] == "mnist")["version"]


def load(app):
    """Constant traffic: one image per request, a new client key each, answers recorded."""
    keys = itertools.count()

    def send() -> tuple[int, str | None]:
        i = next(keys)
        try:
            r = requests.post(f"{app.url}/mnist", json={"base64": b64(IMAGES[i % len(IMAGES)])},
                              headers={"X-Client-Key": f"client-{i}"}, timeout=30)
        except requests.RequestException as err:
            return -1, type(err).__name__
        return r.status_code, r.json().get("model_version") if r.ok else r.text[:200]

    return Traffic(send, threads=2)


def wait_for_state(app, states: set[str], timeout: float = 180) -> dict:
    return wait_until(lambda: (s := rollout(app))["state"] in states and s, timeout,
                      interval=1, what=f"the rollout to reach {states}",
                      state=lambda: rollout(app)["state"])


def test_the_share_is_sticky_and_within_two_points(app, checkpoints) -> None:
    declare(app, checkpoints["good"], traffic=0.3, min_requests=100_000)  # no decision here
    wait_for_state(app, {"canary"})
    candidate = rollout(app)["candidate"]["version"]

    def version(i: int, image: int = 0) -> str:
        r = requests.post(f"{app.url}/mnist", json={"base64": b64(IMAGES[image])},
                          headers={"X-Client-Key": f"share-{i}"}, timeout=30)
        assert r.ok, r.text
        return r.json()["model_version"]

    first = [version(i) for i in range(2000)]
    share = first.count(candidate) / len(first)
    assert abs(share - 0.3) <= 0.02, share
    assert [version(i) for i in range(200)] == first[:200]  # the same client, the same version
    # Without a key, the image decides: one image always meets one version.
    per_image = {i: {requests.post(f"{app.url}/mnist", json={"base64": b64(p)}, timeout=30)
                     .json()["model_version"] for _ in range(5)} for i, p in enumerate(IMAGES)}
    assert all(len(v) == 1 for v in per_image.values()), per_image
    declare(app, None)
    wait_for_state(app, {"none"})


@pytest.mark.parametrize("kind", ["random", "permuted"])
def test_a_candidate_that_fails_the_gate_never_gets_traffic(app, checkpoints, kind) -> None:
    stable = served(app)
    with load(app) as traffic:
        declare(app, checkpoints[kind])
        state = wait_for_state(app, {"rejected"})
    assert "gate FAILED" in state["gate"]["message"]
    answers = Counter(traffic.results)
    assert set(answers) == {(200, stable)}, answers
    declare(app, None)


def test_a_candidate_worse_live_is_rolled_back_with_no_failed_request(app, checkpoints) -> None:
    stable = served(app)
    with load(app) as traffic:
        declare(app, checkpoints["overeager"])
        state = wait_for_state(app, {"rolled_back"})
        after = len(traffic.results)
        wait_until(lambda: len(traffic.results) > after + 20, 60, what="traffic after it")
    assert "decline rate" in state["events"][-1]["detail"]
    codes = Counter(code for code, _ in traffic.results)
    assert set(codes) == {200}, codes
    versions = Counter(v for _, v in traffic.results)
    assert versions[state["candidate"]["version"]] > 0  # it did get its share first
    assert {v for _, v in traffic.results[after + 5:]} == {stable}  # and none after
    declare(app, None)


def test_a_good_candidate_is_added_in_place_and_promoted(app, checkpoints) -> None:
    stable_pids = alive_replicas(NAME, "Classifier_mnist")
    ingress_pids = alive_replicas(NAME, "Ingress")
    with load(app) as traffic:
        declare(app, checkpoints["good"])
        state = wait_for_state(app, {"promoted", "rolled_back"})
        assert state["state"] == "promoted", state["events"][-1]
        candidate = state["candidate"]["version"]
        wait_until(lambda: served(app) == candidate, 30, what="the stable slot to swap",
                   state=lambda: served(app))
        after = len(traffic.results)
        wait_until(lambda: len(traffic.results) > after + 20, 60, what="traffic after it")
    assert set(code for code, _ in traffic.results) == {200}, Counter(traffic.results)
    assert {v for _, v in traffic.results[after + 5:]} == {candidate}
    # Nothing restarted: the same stable and ingress replicas served before, during and after.
    assert alive_replicas(NAME, "Classifier_mnist") == stable_pids
    assert alive_replicas(NAME, "Ingress") == ingress_pids
    assert [e["event"] for e in state["events"][-3:]] == ["started", "gate_passed", "promoted"]
