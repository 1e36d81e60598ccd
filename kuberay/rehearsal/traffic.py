"""The serve Service and its clients: endpoints are the ready pods labelled ray.io/serve=true,
kept current by running each pod's readiness probe on the kubelet's schedule; a load loop sends
the seed's request through them and records every answer. A correctness check, not a benchmark.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import requests

from kuberay.rehearsal.operator import READINESS
from kuberay.rehearsal.pods import Pod


class Service:
    """Endpoints of the serve Service, refreshed by a prober thread (readiness probes)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.pods: list[Pod] = []
        self.ready: dict[str, bool] = {}  # pod ip -> last probe passed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe_loop, daemon=True)

    def __enter__(self) -> Service:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def add(self, pod: Pod) -> None:
        if pod.plan.labels.get("ray.io/serve") == "true":
            with self._lock:
                self.pods.append(pod)

    def remove(self, pod: Pod) -> None:
        """A deleted pod leaves the endpoints at once (the endpoint controller)."""
        with self._lock:
            self.pods = [p for p in self.pods if p is not pod]
            self.ready.pop(pod.ip, None)

    def endpoints(self) -> list[str]:
        with self._lock:
            return [f"http://{p.ip}:{self.port}" for p in self.pods if self.ready.get(p.ip)]

    def _probe_loop(self) -> None:
        # failureThreshold 1 for serve workers, successThreshold 1: the last probe decides.
        while not self._stop.wait(READINESS["period_s"]):
            with self._lock:
                due = [p for p in self.pods
                       if time.monotonic() - p.started >= READINESS["initial_delay_s"]]
            for pod in due:
                ok = pod.probe()
                with self._lock:
                    if any(p is pod for p in self.pods):
                        self.ready[pod.ip] = ok


@dataclass
class Load:
    """Sends `body` to `path` through the Service, one request at a time, until stopped."""

    service: Service
    path: str
    body: dict
    timeout_s: float = 30.0
    pause_s: float = 0.1
    max_requests: int = 20000
    results: list[tuple[float, bool, str]] = field(default_factory=list)  # (t, ok, what)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 10)

    def _run(self) -> None:
        session, turn = requests.Session(), itertools.count()
        session.trust_env = False  # straight to the pods, never through a proxy from the env
        while not self._stop.is_set() and len(self.results) < self.max_requests:
            urls = self.service.endpoints()
            t = time.monotonic()
            if not urls:
                self.results.append((t, False, "no ready endpoint"))
            else:
                url = urls[next(turn) % len(urls)] + self.path
                try:
                    answer = session.post(url, json=self.body, timeout=self.timeout_s)
                    self.results.append((t, answer.status_code == 200,
                                         f"{answer.status_code} {answer.text[:120]}"))
                except requests.RequestException as err:
                    self.results.append((t, False, type(err).__name__))
            time.sleep(self.pause_s)

    def summary(self, since: float) -> dict:
        """Requests sent since `since`, failures, and the first few distinct failure reasons."""
        window = [r for r in self.results if r[0] >= since]
        failed = [r for r in window if not r[1]]
        reasons = sorted({what for _, _, what in failed})[:5]
        return {"requests": len(window), "failed": len(failed), "failure_reasons": reasons,
                "client": f"one request at a time, {self.pause_s} s apart, "
                          f"{self.timeout_s:.0f} s timeout"}

    def recovered_after(self, since: float) -> float | None:
        """Seconds from `since` to the first success after the last failure (None: never)."""
        window = [r for r in self.results if r[0] >= since]
        last_failure = max((t for t, ok, _ in window if not ok), default=None)
        if last_failure is None:
            return 0.0
        after = [t for t, ok, _ in window if ok and t > last_failure]
        return round(after[0] - since, 1) if after else None
