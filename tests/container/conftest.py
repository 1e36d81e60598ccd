"""Fixtures for the image tests: the engine, the `serve` image (built on the upstream base or the
local stand-in), `make serve` as the reference, and one running container of the image.

Each container test skips with one line where no engine can run a container here.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from dataclasses import dataclass, field

import pytest
import requests

from container import build, standin
from container import engine as engines
from tests.helpers import BIN, free_port, readme_curl, run_curl, started
from vision_core.paths import ROOT

FIGURES = ROOT / "test-artifacts" / "container.json"
START_DEADLINE_S = 300  # to the first 200, and again to "healthy"
MAKE_SERVE_URL = "http://127.0.0.1:8000"


def first_200(url: str, t0: float, deadline_s: float, alive=lambda: True) -> float:
    """Seconds from t0 until `url` first answers 200 (polled every 0.25 s)."""
    http = requests.Session()
    http.trust_env = False
    while time.monotonic() - t0 < deadline_s:
        if not alive():
            raise RuntimeError(f"exited before {url} answered 200")
        with contextlib.suppress(requests.RequestException):
            if http.get(url, timeout=2).status_code == 200:
                return round(time.monotonic() - t0, 1)
        time.sleep(0.25)
    raise TimeoutError(f"{url} gave no 200 within {deadline_s} s")


@pytest.fixture(scope="session")
def figures() -> dict:
    """What this run measured, written to test-artifacts/container.json at the end."""
    found: dict = {}
    yield found
    if found:
        FIGURES.parent.mkdir(exist_ok=True)
        FIGURES.write_text(json.dumps(found, indent=2) + "\n")


@pytest.fixture(scope="session")
def engine() -> engines.Engine:
    found, why = engines.find()
    if found is None:
        pytest.skip(why)
    return found


@pytest.fixture(scope="session")
def serve_image(engine, figures) -> str:
    """The `serve` target, built as `make image` builds it. Skips (one line) where the base
    cannot be had or the engine cannot run a container on it."""
    try:
        base, line = build.choose_base(engine)
    except standin.Unavailable as err:
        pytest.skip(str(err))
    probe = engine.run("--rm", base, "true", check=False, timeout=120)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"])[-1]
        pytest.skip(f"{engine.name} cannot run a container here: {last}")
    result = build.build(engine, "serve", base)
    figures["build"] = {**result, "base_line": line}
    return result["tag"]


@pytest.fixture(scope="module")
def make_serve(figures, tmp_path_factory) -> dict:
    """`make serve` from a clean environment: its cold start to the first 200 and its answer to
    the README's curl, then stopped (before the container starts: one at a time on 2 cores)."""
    with contextlib.suppress(requests.RequestException):
        requests.get(MAKE_SERVE_URL, timeout=2)
        pytest.fail(f"something already listens on {MAKE_SERVE_URL}; stop it and re-run")
    if not (BIN / "serve").exists():
        pytest.skip("no .venv: run `make install` first")
    log = tmp_path_factory.mktemp("make-serve") / "serve.log"
    t0 = time.monotonic()
    with started(["make", "--no-print-directory", "serve"], log) as proc:
        seconds = first_200(f"{MAKE_SERVE_URL}/healthz", t0, START_DEADLINE_S,
                            alive=lambda: proc.poll() is None)
        answer = run_curl(readme_curl(), MAKE_SERVE_URL)
    figures["make_serve"] = {"seconds_to_first_200": seconds}
    return {"readme_curl": answer, "seconds_to_first_200": seconds}


@dataclass
class Running:
    """One container of the image, published on 127.0.0.1:<port>."""

    engine: engines.Engine
    id: str
    url: str
    timings: dict = field(default_factory=dict)

    def exec(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.engine("exec", self.id, *argv, check=False, timeout=timeout)

    def python(self, code: str, *args: str) -> str:
        """Run `code` with the image's Python, as the image's user; its stdout."""
        done = self.exec("python", "-c", code, *args)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout


@pytest.fixture(scope="module")
def container(engine, serve_image, make_serve, figures) -> Running:
    """The image run as a user would: a published port on loopback and a /dev/shm for Ray's
    object store; ready once its own HEALTHCHECK says healthy."""
    port = free_port()
    t0 = time.monotonic()
    cid = engine.run("-d", "-p", f"127.0.0.1:{port}:8000", "--shm-size=1g",
                     serve_image).stdout.strip()
    running = Running(engine, cid, f"http://127.0.0.1:{port}")

    def alive() -> bool:
        state = engine("inspect", "--format", "{{.State.Running}}", cid, check=False)
        return state.stdout.strip() == "true"

    try:
        running.timings["seconds_to_first_200"] = first_200(
            f"{running.url}/healthz", t0, START_DEADLINE_S, alive)
        while (status := engine.health(cid)) != "healthy":
            if time.monotonic() - t0 > START_DEADLINE_S or not alive():
                raise RuntimeError(f"HEALTHCHECK says {status!r}")
            time.sleep(2)
        running.timings["seconds_to_healthy"] = round(time.monotonic() - t0, 1)
        figures["container"] = running.timings
        yield running
    except BaseException:
        print(engine("logs", "--tail", "60", cid, check=False).stdout)
        raise
    finally:
        engine("rm", "-f", "-t", "0", cid, check=False, timeout=120)
