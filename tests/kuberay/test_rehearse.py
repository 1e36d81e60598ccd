"""kuberay/rehearse.py end to end: the manifests on a real multi-node Ray cluster, each pod in a
network namespace, with the operator's steps (kuberay/README.md, "Rehearsal"). Takes minutes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from vision_core.paths import ROOT

REPORT = ROOT / "test-artifacts" / "rehearsal.json"
TOOLS = ("ip", "unshare", "setpriv", "wget")
# The module's first test starts the whole rehearsal (the fixture); the rest read its report.
pytestmark = pytest.mark.timeout(1600)


def missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "the KubeRay rehearsal needs root (network namespaces); run `sudo make rehearse`"
    absent = [tool for tool in TOOLS if not shutil.which(tool)]
    if absent:
        return f"the KubeRay rehearsal needs {', '.join(absent)}: apt-get install iproute2 wget"
    return None


@pytest.fixture(scope="module")
def report() -> dict:
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    proc = subprocess.run([sys.executable, "-m", "kuberay.rehearse", "--report", str(REPORT)],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=1500)
    assert REPORT.exists(), (proc.stdout + proc.stderr)[-4000:]
    found = json.loads(REPORT.read_text())
    assert "steps" in found and "error" not in found, found.get("error") or proc.stderr[-4000:]
    return found


def test_pods_run_the_images_where_podman_runs_containers(report: dict) -> None:
    """The RayService's pods run the serve image as containers wherever podman works here (the
    RayJob's the train image, where one was built); otherwise the report says why, in one line."""
    from container.build import image_tag
    from container.engine import find

    runtime, pods = report["runtime"], report["pods"].values()
    engine, _ = find()
    if engine is None or engine.name != "podman":
        assert runtime["engine"] is None
        assert any(d.startswith("No container runtime (") for d in report["deviations"])
        assert {p["runs"] for p in pods} == {"venv"}
        return
    assert runtime["engine"] == "podman"
    assert runtime["images"][image_tag("serve")] == "container"
    ran = {p["runs"] for p in pods}
    assert {t for t, how in runtime["images"].items() if how == "container"} <= ran
    assert ("venv" in ran) == ("venv" in runtime["images"].values())


def test_every_goal_is_met(report: dict) -> None:
    assert report["ok"] and all(report["checks"].values()), report["checks"]


def test_nothing_is_left_behind(report: dict) -> None:
    left = report["left_behind"]
    assert left == {"namespaces": [], "folders": [], "containers": [],
                    "host_ray_address_file_changed": False}


def test_the_serve_config_deploys_and_the_dashboard_wants_the_token(report: dict) -> None:
    step = report["steps"]["2_serve_config"]
    assert set(step["status_without_token"].values()) == {401}, step


def test_the_workers_proxy_answers_and_no_replica_runs_on_the_head(report: dict) -> None:
    step = report["steps"]["3_traffic"]
    assert step["seed_contract"]["status"] == 200
    assert step["seed_contract"]["class_id"] == step["seed_contract"]["expected"]
    assert step["batch"]["class_ids"] == step["batch"]["expected"]
    assert step["oip"]["class_id"] == step["oip"]["expected"]
    assert step["replicas_on_head"] == 0 and sum(step["replicas_by_node"].values()) >= 4


def test_an_in_place_update_drops_no_request(report: dict) -> None:
    step = report["steps"]["4_in_place_update"]
    assert step["requests"] > 0 and step["failed"] == 0, step
    assert step["replicas_replaced"] == 0, "a user_config change must not restart replicas"


def test_the_service_recovers_from_losing_its_worker(report: dict) -> None:
    step = report["steps"]["5_worker_killed"]
    assert step["seconds_to_recover"] is not None, step
    assert step["new_worker_ip"] in step["replicas_by_node"], step


def test_the_ray_job_succeeds_and_writes_its_checkpoint_to_the_claim(report: dict) -> None:
    step = report["steps"]["6_ray_job"]
    assert step["status"] == "SUCCEEDED", step.get("submitter_log")
    assert step["checkpoint"] == {"path": step["checkpoint"]["path"], "dataset": "fmnist",
                                  "smoke_test": True}
