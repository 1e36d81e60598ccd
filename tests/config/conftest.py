"""Fixtures for the monitoring config tests: the files in config/monitoring/ and promtool."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from training.paths import ROOT

MONITORING = ROOT / "config" / "monitoring"
RULES = MONITORING / "rules" / "vision.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "vision-ai.json"
EXPORTED = Path(__file__).resolve().parent / "exported_metrics.yml"
METRIC = re.compile(r"\b(?:ray|haproxy)_[a-z0-9_]+\b")


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def exported() -> dict[str, list[str]]:
    return yaml.safe_load(EXPORTED.read_text())


def env_file() -> dict[str, str]:
    """config/monitoring/monitoring.env, with ${VAR} expanded as the shell and make would."""
    values: dict[str, str] = {}
    for line in (MONITORING / "monitoring.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], value)
    return values


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.skip("promtool is missing: apt-get install prometheus (.ci/run installs it)")
    return found


def haproxy_metrics_port_default() -> int:
    """Ray's default HAProxy metrics port. Ray's constant follows RAY_SERVE_HAPROXY_METRICS_PORT,
    which the test session moves aside (tests/conftest.py), so the default is read from its source."""
    from ray.serve._private import constants

    found = re.search(r'"RAY_SERVE_HAPROXY_METRICS_PORT", "(\d+)"', inspect.getsource(constants))
    assert found, "Ray no longer names its HAProxy metrics port's default this way"
    return int(found.group(1))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
