"""config/serve.yaml behaves the same however it is started, and Ray's own CLI works beside it.

Each local way a user starts the service runs here for real, on the file's own port (8000):
`make serve`, a plain `serve run config/serve.yaml`, and `serve deploy` to a cluster started by
`ray start`. Through each, a 20 MB body gets the 413 JSON answer (HAProxy and throughput mode
come from the file's `controller_options`, not from the shell), and `serve status` works from a
"second terminal" (a fresh environment) after the README's one step, `export RAY_AUTH_MODE=token`.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import BIN, clean_env, free_port, started, wait_until
from vision_core.paths import ROOT
from vision_core.serve_config import load, serve_env

pytestmark = pytest.mark.ray  # the session's Serve is moved off the file's HAProxy ports
CONFIG = load()
URL = f"http://127.0.0.1:{CONFIG['http_options']['port']}"
SECOND_TERMINAL_STEP = {"RAY_AUTH_MODE": "token"}  # the README's one documented step


def serving(proc: subprocess.Popen, log: Path) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    with contextlib.suppress(requests.RequestException):
        return requests.get(f"{URL}/healthz", timeout=5).status_code == 200
    return False


def check_like_a_user(dashboard: str | None = None) -> None:
    """The 20 MB body, then `serve status` from a second terminal."""
    big = requests.post(f"{URL}/mnist", data=b"{" + b" " * (20 * 2**20) + b"}", timeout=60,
                        headers={"Content-Type": "application/json"})
    assert big.status_code == 413, big.text[:300]
    assert big.json()["error"]["code"] == "body_too_large"
    address = ["--address", dashboard] if dashboard else []

    def vision_status() -> str:
        status = subprocess.run([str(BIN / "serve"), "status", *address], cwd=ROOT,
                                env=clean_env(**SECOND_TERMINAL_STEP), capture_output=True,
                                text=True, timeout=120)
        assert status.returncode == 0, status.stderr[-2000:]
        return yaml.safe_load(status.stdout)["applications"]["vision"]["status"]

    # /healthz answers once every model is loaded; Serve's own status may lag a few seconds
    # behind (replicas still STARTING in its books), so poll it, bounded.
    wait_until(lambda: vision_status() == "RUNNING", 180, interval=3,
               what="`serve status` to show the app RUNNING")


@pytest.fixture
def port_8000_free():
    with contextlib.suppress(requests.RequestException):
        requests.get(URL, timeout=2)
        pytest.fail(f"something already listens on {URL}; stop it (make serve?) and re-run")


@pytest.mark.parametrize("way", [["make", "--no-print-directory", "serve"],
                                 [str(BIN / "serve"), "run", "config/serve.yaml"]],
                         ids=["make serve", "serve run config/serve.yaml"])
def test_a_local_start(way, tmp_path, port_8000_free, ray_address):
    log = tmp_path / "serve.log"
    with started(way, log) as proc:
        wait_until(lambda: serving(proc, log), 240, interval=2, what=f"{way} to serve")
        check_like_a_user()


def test_serve_deploy_to_a_running_cluster(tmp_path, port_8000_free, ray_address):
    gcs, dashboard = free_port(), free_port()
    head = ["ray", "start", "--head", "--block", f"--port={gcs}", "--num-cpus=4",
            f"--dashboard-port={dashboard}", "--include-dashboard=true"]
    log = tmp_path / "ray.log"
    address = f"http://127.0.0.1:{dashboard}"
    try:
        with started([str(BIN / head[0]), *head[1:]], log) as proc:
            wait_until(lambda: proc.poll() is None and _ok(f"{address}/api/version"), 120,
                       interval=2, what="ray start's dashboard")
            deploy = subprocess.run([str(BIN / "serve"), "deploy", "config/serve.yaml",
                                     "--address", address], cwd=ROOT,
                                    env=clean_env(**SECOND_TERMINAL_STEP), capture_output=True,
                                    text=True, timeout=120)
            assert deploy.returncode == 0, deploy.stderr[-2000:]
            wait_until(lambda: serving(proc, log), 240, interval=2, what="the deployed config")
            check_like_a_user(address)
    finally:
        _forget_cluster(gcs)


def _ok(url: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(url, timeout=5).status_code in (200, 401)
    return False


def _forget_cluster(gcs_port: int) -> None:
    """`ray start` records its address for later `ray.init("auto")`; a stopped cluster's record
    would send the next `make serve` to a dead address. Remove ours only."""
    record = Path("/tmp/ray/ray_current_cluster")
    with contextlib.suppress(FileNotFoundError):
        if record.read_text().strip().endswith(f":{gcs_port}"):
            record.unlink()


def test_replicas_may_pass_a_whole_request_on() -> None:
    # The ingress hands a request's images to Preprocess in one gRPC message.
    body = CONFIG["applications"][0]["args"]["max_body_bytes"]
    assert int(serve_env()["RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH"]) > body
