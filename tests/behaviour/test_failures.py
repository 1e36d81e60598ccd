"""Failures under steady load: killed or frozen replicas are replaced, and a client that
retries sees no failed request. Figures go to test-artifacts/reliability.json."""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, alive_replicas, extra_app, golden, wait_until

pytestmark = pytest.mark.ray
FIGURES: dict[str, dict] = {}


class Load:
    """Steady single-image traffic from 3 threads; each request retried up to 5 times."""

    def __init__(self, url: str):
        path, self.label = golden("mnist")[0]
        self.body = {"base64": base64.b64encode(path.read_bytes()).decode()}
        self.url, self.stop = f"{url}/mnist", threading.Event()
        self.sent = self.first_try_failed = self.failed = 0
        self.threads = [threading.Thread(target=self.run) for _ in range(3)]

    def attempt(self) -> bool:
        try:
            r = requests.post(self.url, json=self.body, timeout=15)
            return r.status_code == 200 and r.json()["class_id"] == self.label
        except requests.RequestException:
            return False

    def run(self) -> None:
        while not self.stop.is_set():
            self.sent += 1
            for i in range(5):
                if self.attempt():
                    break
                self.first_try_failed += i == 0
                time.sleep(0.2 * 2 ** i)
            else:
                self.failed += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        time.sleep(2)
        return self

    def __exit__(self, *exc):
        time.sleep(2)  # traffic continues after recovery
        self.stop.set()
        for t in self.threads:
            t.join()


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
