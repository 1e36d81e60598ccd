"""End to end: the session's service, a real Prometheus started by `make monitor` with
config/monitoring/, traffic including bad input, and Prometheus' counts against what was sent.

The session's Ray runs without its dashboard, which is what writes Ray's service-discovery file,
so the test writes it with Ray's own writer (the class the dashboard runs) into a temp folder.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import (
    GOLDEN,
    MONITORING,
    exported,
    free_port,
    golden,
    haproxy_metrics_port_default,
    wait_until,
)
from vision_core.paths import ROOT

pytestmark = pytest.mark.ray

APP = 'application="vision"'
# What the service's counters read in Prometheus, by the labels the test compares.
QUERIES = {
    "predictions": (f"sum by (model, label) (ray_vision_predictions_total{{{APP}}})",
                    ("model", "label")),
    "rejections": (f"sum by (reason) (ray_vision_rejected_requests_total{{{APP}}})", ("reason",)),
    "declined": (f"sum by (model, reason) (ray_vision_declined_total{{{APP}}})",
                 ("model", "reason")),
    "http": (f"sum by (status_code) (ray_serve_num_http_requests_total{{{APP}}})", ("status_code",)),
}


WRITE_DISCOVERY = """
import sys
from ray._private.metrics_agent import PrometheusServiceDiscoveryWriter
PrometheusServiceDiscoveryWriter(sys.argv[1], sys.argv[2]).write()
"""


def report_interval_s() -> float:
    """How often Ray's workers hand their metrics to the node's agent (Ray's own setting)."""
    import ray._raylet

    return ray._raylet.Config.metrics_report_interval_ms() / 1000


def prometheus_config(tmp_path: Path) -> Path:
    """config/monitoring/prometheus.yml, changed only where the test must: the discovery file,
    absolute rule paths, and second-long intervals so the test waits seconds, not minutes."""
    # In a child process: the writer re-initialises Ray's global state, which the tests share.
    subprocess.run([sys.executable, "-c", WRITE_DISCOVERY, _gcs_address(), str(tmp_path)],
                   check=True, timeout=60)
    discovery = tmp_path / "prom_metrics_service_discovery.json"
    assert discovery.exists()
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(MONITORING / path) for path in config["rule_files"]]
    # The session moves HAProxy's metrics port aside (tests/conftest.py): scrape it there.
    haproxy = os.environ.get("RAY_SERVE_HAPROXY_METRICS_PORT", str(haproxy_metrics_port_default()))
    for job in config["scrape_configs"]:
        for sd in job.get("file_sd_configs", []):
            sd["files"] = [str(discovery)]
        for relabel in job.get("relabel_configs", []):
            if relabel.get("target_label") == "__address__":
                relabel["replacement"] = f"127.0.0.1:{haproxy}"
        # Tests send traffic to loopback only: Ray lists this machine's node address, and its
        # exporters listen on every interface, so the same ports are scraped on 127.0.0.1.
        job["relabel_configs"] = [{"source_labels": ["__address__"], "regex": r".+:(\d+)",
                                   "target_label": "__address__",
                                   "replacement": "127.0.0.1:${1}"},
                                  *job.get("relabel_configs", [])]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _gcs_address() -> str:
    import ray

    return ray.get_runtime_context().gcs_address


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def get(self, path: str, **params) -> dict | list:
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def vector(self, query: str, labels: tuple[str, ...]) -> dict[tuple, int]:
        return {tuple(s["metric"].get(k, "") for k in labels): round(float(s["value"][1]))
                for s in self.get("query", query=query)["result"]}

    def targets_down(self) -> list[str]:
        """Every scrape target not (yet) up, with Prometheus' last error; [] when all are."""
        active = self.get("targets")["activeTargets"]
        down = [f"{t['labels']['job']} {t['scrapeUrl']}: {t['health']} {t['lastError']}"
                for t in active if t["health"] != "up"]
        jobs = {t["labels"]["job"] for t in active}
        return down + [f"no {job} target" for job in {"ray", "haproxy"} - jobs]

    def targets_up(self) -> bool:
        return not self.targets_down()


@pytest.fixture(scope="module")
def prometheus(serve_url, tmp_path_factory) -> Iterator[Prometheus]:
    """`make monitor` on a free loopback port with its own storage, stopped by its process group."""
    tmp_path = tmp_path_factory.mktemp("prometheus")
    if not shutil.which("prometheus"):
        pytest.skip("prometheus is missing: apt-get install prometheus (.ci/run installs it)")
    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        ["make", "-s", "monitor", f"PROMETHEUS_CONFIG={prometheus_config(tmp_path)}",
         f"PROMETHEUS_ADDRESS={address}", f"PROMETHEUS_DATA={tmp_path / 'data'}"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    prom = Prometheus(f"http://{address}")
    try:
        wait_until(lambda: _ready(prom, proc), 30, what="Prometheus to answer")
        yield prom
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def _ready(prom: Prometheus, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"make monitor exited with {proc.returncode}")
    try:
        return requests.get(f"{prom.url}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def all_up(prom: Prometheus) -> None:
    wait_until(prom.targets_up, 30, what="every target (ray, haproxy) up",
               state=prom.targets_down)


def snapshot(prom: Prometheus) -> dict[str, dict[tuple, int]]:
    return {name: prom.vector(query, labels) for name, (query, labels) in QUERIES.items()}


def delta(after: dict, before: dict) -> dict[str, dict[tuple, int]]:
    return {name: {k: v - before[name].get(k, 0) for k, v in after[name].items()
                   if v != before[name].get(k, 0)} for name in after}


def send_traffic(url: str) -> dict[str, dict[tuple, int]]:
    """Good images one by one and many in one request, and bad requests of three kinds.
    Returns what the answers say, in the shape of `snapshot`."""
    sent = {name: collections.Counter() for name in QUERIES}

    def record(r: requests.Response, model: str | None) -> None:
        sent["http"][(str(r.status_code),)] += 1
        body = r.json()
        if r.status_code >= 400:
            sent["rejections"][(body["error"]["code"],)] += 1
            return
        for p in body.get("predictions", [body]):
            if p["accepted"]:
                sent["predictions"][(model, p["label"])] += 1
            else:  # a declined image counts as a decline, not as a prediction
                sent["declined"][(model, p["reason"])] += 1

    for path, _ in golden("mnist"):
        record(requests.post(f"{url}/mnist", files={"file": path.read_bytes()}, timeout=30), "mnist")
    for path in sorted(GOLDEN.glob("declined_mnist_*")):  # blank, a letter, noise, a garment
        record(requests.post(f"{url}/mnist", files={"file": path.read_bytes()}, timeout=30), "mnist")
    files = [("file", (p.name, p.read_bytes())) for p, _ in golden("fmnist")]
    record(requests.post(f"{url}/fmnist", files=files, timeout=30), "fmnist")
    for _ in range(3):
        record(requests.post(f"{url}/mnist", data=b"raw", timeout=30,
                             headers={"content-type": "application/octet-stream"}), None)
    for _ in range(2):
        record(requests.post(f"{url}/nosuch", files={"file": b"x"}, timeout=30), None)
    record(requests.post(f"{url}/fmnist", files={"file": b"not an image"}, timeout=30), None)
    return {name: dict(counts) for name, counts in sent.items()}


def test_prometheus_counts_what_was_sent(prometheus: Prometheus, serve_url: str) -> None:
    started = time.monotonic()
    all_up(prometheus)
    # Earlier tests' requests reach the agent within one report interval: let them land first,
    # so the baseline holds them all and the difference is this test's traffic alone.
    time.sleep(max(0.0, report_interval_s() + 2 - (time.monotonic() - started)))
    before = snapshot(prometheus)
    sent = send_traffic(serve_url)
    assert sent["rejections"] and sent["declined"] and len(sent["predictions"]) > 3, sent

    def seen() -> dict:
        return delta(snapshot(prometheus), before)

    wait_until(lambda: seen() == sent, 60, interval=1, what=f"Prometheus to count {sent}",
               state=seen)
    print(f"sent and counted by Prometheus: {sent}")


def test_every_listed_metric_is_exported_and_the_rules_evaluate(prometheus: Prometheus,
                                                              serve_url: str) -> None:
    all_up(prometheus)
    send_traffic(serve_url)  # some series (errors, batch sizes) exist only once traffic came

    def missing() -> set[str]:
        return set(listed["scraped"]) - set(prometheus.get("label/__name__/values"))

    listed = exported()
    wait_until(lambda: not missing(), 30, interval=1, what="every listed metric",
               state=missing)
    groups = prometheus.get("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert rules and all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
    # The classifier's gauges name the versions GET /models reports, and no failed reload.
    models = requests.get(f"{serve_url}/models", timeout=30).json()
    expected = {(m["name"], m["version"]) for m in models}

    def served() -> set[tuple]:
        return set(prometheus.vector(
            f"max by (model, version) (ray_vision_model_info{{{APP}}} == 1)", ("model", "version")))

    # A replica started by autoscaling reports from its first metrics export (10 s) on.
    wait_until(lambda: served() == expected, 30, interval=1,
               what=f"the served versions {expected}", state=served)
    assert set(prometheus.vector(f"max by (model) (ray_vision_reload_failed{{{APP}}})",
                                 ("model",)).values()) == {0}
