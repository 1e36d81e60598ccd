"""Failures under steady load: killed or frozen replicas are replaced, and a client that
retries sees no failed request. Figures go to test-artifacts/reliability.json."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import Traffic, alive_replicas, b64, extra_app, golden, wait_until
from vision_core.paths import ROOT

pytestmark = pytest.mark.ray
FIGURES: dict[str, dict] = {}
RETRIES = 5


class Load(Traffic[int]):
    """Steady single-image traffic from 3 threads; each request retried up to 5 times.

    Each result is how many tries of one request failed: 0 is a first-try success, RETRIES a
    request that failed for good.
    """

    def __init__(self, url: str):
        path, label = golden("mnist")[0]
        body = {"base64": b64(path)}

        def attempt() -> bool:
            try:
                r = requests.post(f"{url}/mnist", json=body, timeout=15)
                return r.status_code == 200 and r.json()["class_id"] == label
            except requests.RequestException:
                return False

        def with_retries() -> int:
            for i in range(RETRIES):
                if attempt():
                    return i
                time.sleep(0.2 * 2 ** i)
            return RETRIES

        super().__init__(with_retries, threads=3)

    @property
    def sent(self) -> int:
        return len(self.results)

    @property
    def first_try_failed(self) -> int:
        return sum(tries > 0 for tries in self.results)

    @property
    def failed(self) -> int:
        return self.results.count(RETRIES)

    def __enter__(self) -> Load:
        super().__enter__()
        time.sleep(2)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(2)  # traffic continues after recovery
        super().__exit__(*exc)


def _replica(app: str, deployment: str) -> tuple[str, int]:
    """(actor name, pid) of the deployment's only replica."""
    alive = alive_replicas(app, deployment)
    assert len(alive) == 1, alive
    return next(iter(alive.items()))


def _recover(app, deployment: str, old_name: str, start: float) -> float:
    def replaced():
        try:
            new = _replica(app.name, deployment)
        except AssertionError:
            return False
        return new[0] != old_name and app.replicas(deployment) == 1
    wait_until(replaced, 60, what=f"a new {deployment} replica")
    return round(time.monotonic() - start, 1)


def _record(name: str, load: Load, recovery_s: float) -> None:
    FIGURES[name] = {"requests": load.sent, "failed_after_retries": load.failed,
                     "failed_first_try": load.first_try_failed, "recovery_s": recovery_s}
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "reliability.json").write_text(json.dumps(FIGURES, indent=2))


@pytest.fixture(scope="module")
def chaos(base_config):
    # One replica each, so a failure is total; health and shutdown settings as in serve.yaml.
    one = {"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}}
    with extra_app(base_config, "chaos", {"Classifier_mnist": one, "Preprocess": one}) as app:
        yield app


@pytest.mark.parametrize("deployment", ["Classifier_mnist", "Preprocess"])
def test_killed_replica_is_replaced_and_retries_hide_it(chaos, deployment):
    import ray

    victim = _replica(chaos.name, deployment)
    with Load(chaos.url) as load:
        start = time.monotonic()
        ray.kill(ray.get_actor(victim[0], namespace="serve"), no_restart=True)
        recovery = _recover(chaos, deployment, victim[0], start)
    _record(f"kill {deployment}", load, recovery)
    assert load.failed == 0 and load.sent > 20
    assert recovery < 30


def test_frozen_replica_fails_its_health_check_and_is_replaced(chaos):
    victim = _replica(chaos.name, "Classifier_mnist")
    with Load(chaos.url) as load:
        start = time.monotonic()
        os.kill(victim[1], signal.SIGSTOP)  # hung, not dead: only the health check notices
        try:
            recovery = _recover(chaos, "Classifier_mnist", victim[0], start)
        finally:
            if Path(f"/proc/{victim[1]}").exists():
                os.kill(victim[1], signal.SIGCONT)
    _record("frozen Classifier_mnist (health check)", load, recovery)
    assert load.failed == 0
    # Serve declares a replica unhealthy after 3 failed checks in a row, each taking
    # health_check_period_s + health_check_timeout_s (5 + 10 s in serve.yaml), then replaces it;
    # killed replicas are noticed at once and must be back within 30 s.
    assert recovery < 75
