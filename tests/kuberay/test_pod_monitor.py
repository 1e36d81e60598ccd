"""kuberay/pod-monitor.yaml: the Prometheus operator scrapes what config/monitoring/ scrapes locally,
from ports the RayService's pods really declare, through the network policy.

Its schema check (a subset written from the operator's API reference; the CRDs are not available
offline) is in test_manifests.py with the other manifests'.
"""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import haproxy_metrics_port_default, only
from vision_core.paths import ROOT

PROMETHEUS = yaml.safe_load((ROOT / "config" / "monitoring" / "prometheus.yml").read_text())
# KubeRay starts every Ray node with --metrics-export-port=8080 unless rayStartParams says otherwise.
KUBERAY_METRICS_PORT = 8080


@pytest.fixture(scope="module")
def monitor(manifests) -> dict:
    return only(manifests, "pod-monitor.yaml", "PodMonitor")


def ray_pods(ray_service: dict) -> list[dict]:
    cluster = ray_service["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]


def test_it_selects_every_ray_pod_of_the_service(monitor, ray_service) -> None:
    wanted = monitor["spec"]["selector"]["matchLabels"]
    for group in ray_pods(ray_service):
        labels = group["template"]["metadata"]["labels"]
        assert {k: labels.get(k) for k in wanted} == wanted


def test_every_scraped_port_is_declared_on_every_ray_container(monitor, ray_service) -> None:
    expected = {"metrics": KUBERAY_METRICS_PORT, "haproxy-metrics": haproxy_metrics_port_default()}
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} == set(expected)
    for group in ray_pods(ray_service):
        assert "metrics-export-port" not in group["rayStartParams"]
        (ray,) = [c for c in group["template"]["spec"]["containers"] if c["name"].startswith("ray-")]
        ports = {p["name"]: p["containerPort"] for p in ray.get("ports", [])}
        assert {name: ports.get(name) for name in expected} == expected, ray["name"]


def test_jobs_and_interval_match_the_local_prometheus_config(monitor) -> None:
    """The rules and the dashboard select job="ray" and job="haproxy", on both sides."""
    local = {job["job_name"] for job in PROMETHEUS["scrape_configs"]}
    jobs = set()
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        assert endpoint["interval"] == PROMETHEUS["global"]["scrape_interval"]
        (job,) = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
        jobs.add(job)
        assert any(r["targetLabel"] == "ray_io_cluster" for r in endpoint["relabelings"])
    assert jobs == local


def test_the_network_policy_lets_prometheus_scrape(manifests) -> None:
    (policy,) = [d for d in manifests["network-policy.yaml"]
                 if d["metadata"]["name"] == "vision-ai-serve"]
    opened = [{p["port"] for p in rule.get("ports", [])} for rule in policy["spec"]["ingress"]
              if any(f.get("namespaceSelector", {}).get("matchLabels", {}).get(
                  "kubernetes.io/metadata.name") == "monitoring" for f in rule.get("from", []))]
    assert opened == [{KUBERAY_METRICS_PORT, haproxy_metrics_port_default()}]


def test_the_ray_dashboard_finds_prometheus_and_grafana(ray_service) -> None:
    head = ray_service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    env = {e["name"]: e.get("value", "") for e in head["containers"][0]["env"]}
    assert env["RAY_PROMETHEUS_HOST"].startswith("http://") and ".monitoring.svc" in \
        env["RAY_PROMETHEUS_HOST"]
    assert ".monitoring.svc" in env["RAY_GRAFANA_HOST"]
