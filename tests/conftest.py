"""Shared fixtures: Ray and the Serve app start once per test session (as in Ray's own tests)."""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import time
from pathlib import Path

import pytest
import requests
import yaml

from training.paths import ROOT  # the one definition; tests may import it from here too

GOLDEN = Path(__file__).resolve().parent / "golden"
SERVE_CONFIG = ROOT / "config" / "serve.yaml"
TEST_KEY_ENV, TEST_KEY = "VISION_TEST_API_KEY", "k3y-for-tests-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_config(port: int) -> dict:
    """config/serve.yaml as deployed by `serve run`, moved to a free port for the tests."""
    config = copy.deepcopy(yaml.safe_load(SERVE_CONFIG.read_text()))
    # A shorter end-to-end timeout keeps the 408 test quick; nothing else comes near it.
    config["http_options"].update(host="127.0.0.1", port=port, request_timeout_s=10)
    return config


def wait_until(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def ray_address() -> str:
    """One local Ray instance for the whole session; subprocesses join it via RAY_ADDRESS."""
    import ray

    # The API-key test's app reads its key from this variable, set in the processes'
    # environment as a deployment would (a key in runtime_env would be logged by Ray).
    os.environ.setdefault(TEST_KEY_ENV, TEST_KEY)
    # HAProxy's stats and metrics ports move aside, so that tests can start the service the
    # way users do (tests/config/test_serve_yaml.py) on the defaults beside this session's.
    os.environ["RAY_SERVE_HAPROXY_STATS_PORT"] = str(free_port())
    os.environ["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(free_port())
    # Logical CPUs: Serve replicas reserve fractions and the smoke training takes 1 worker.
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def deploy(config: dict, timeout: float = 180) -> None:
    """Deploy a Serve config dict exactly as `serve run config.yaml` does, and wait for it."""
    from ray import serve
    from ray.serve._private.api import serve_start
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    # controller_options carry Serve's process settings (throughput mode, HAProxy), as with
    # `serve run`; they apply when the session's first deploy starts the controller.
    client = serve_start(http_options=schema.http_options.model_dump(),
                         proxy_location=schema.proxy_location,
                         controller_options=schema.controller_options)
    client.deploy_apps(schema, _blocking=False)

    def running():
        status = serve.status().applications
        apps = [status.get(a.name) for a in schema.applications]
        failed = [a for a in apps if a and a.status in ("DEPLOY_FAILED", "UNHEALTHY")]
        if failed:
            raise RuntimeError(f"deploy failed: {failed[0].message}")
        return all(a and a.status == "RUNNING" for a in apps)

    wait_until(running, timeout, what="the Serve application to run")


@pytest.fixture(scope="session")
def base_config(ray_address) -> dict:
    """The deployed config (config/serve.yaml on a free port), shared by the session."""
    config = serve_config(free_port())
    deploy(config)
    return config


@pytest.fixture(scope="session")
def serve_url(base_config) -> str:
    """The real app from config/serve.yaml, over real HTTP, started once per session."""
    url = f"http://127.0.0.1:{base_config['http_options']['port']}"
    wait_until(lambda: _ok(url + "/healthz"), 60, what="/healthz")
    return url


class ExtraApp:
    """A second copy of the app at /<name>, with per-deployment overrides.

    Serve configs are declarative, so every deploy lists the base app too (unchanged, so Serve
    leaves it running).
    """

    def __init__(self, base: dict, name: str, deployments: dict[str, dict],
                 args: dict | None = None):
        self.base, self.name, self.args = base, name, args or {}
        self.url = f"http://127.0.0.1:{base['http_options']['port']}/{name}"
        self.update(deployments)

    def update(self, deployments: dict[str, dict]) -> None:
        app = copy.deepcopy(self.base["applications"][0])
        app.update(name=self.name, route_prefix=f"/{self.name}")
        app["args"].update(self.args)
        for dep in app["deployments"]:
            for key, value in deployments.get(dep["name"], {}).items():
                merged = {**dep.get(key), **value} if isinstance(value, dict) else value
                dep[key] = merged
        config = copy.deepcopy(self.base)
        config["applications"].append(app)
        deploy(config)

    def replicas(self, deployment: str) -> int:
        from ray import serve

        status = serve.status().applications[self.name].deployments[deployment]
        return status.replica_states.get("RUNNING", 0)

    def close(self) -> None:
        deploy(self.base)


@contextlib.contextmanager
def extra_app(base: dict, name: str, deployments: dict[str, dict], args: dict | None = None):
    app = ExtraApp(base, name, deployments, args)
    try:
        yield app
    finally:
        app.close()


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def golden(dataset: str) -> list[tuple[Path, int]]:
    """Committed example images `<dataset>_<kind>_<i>_label<k>.<ext>` with their true class."""
    found = sorted(GOLDEN.glob(f"{dataset}_*"))
    return [(p, int(p.stem.rsplit("label", 1)[1])) for p in found]


def alive_replicas(app: str, deployment: str = "") -> dict[str, int]:
    """Alive Serve replica actors of an app (optionally one deployment): name -> pid.

    Read from the GCS directly: the state API would need the dashboard, which tests skip.
    """
    import ray._private.state as state

    prefix = f"ServeReplica:{app}:{deployment}"
    matches = (lambda name: name == prefix) if deployment else \
        (lambda name: name.startswith(prefix))
    return {a["Name"]: a["Pid"] for a in state.actors(actor_state_name="ALIVE").values()
            if matches(a["ActorClassName"])}
