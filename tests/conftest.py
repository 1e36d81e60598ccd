"""Shared fixtures: Ray and the Serve app start once per test session (as in Ray's own tests).

Plain helper functions live in tests/helpers.py; fixtures only here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.helpers import (
    TEST_KEY,
    TEST_KEY_ENV,
    PostgresServer,
    answers_200,
    deploy,
    free_port,
    serve_config_on,
    wait_until,
)


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


@pytest.fixture(scope="session")
def base_config(ray_address) -> dict:
    """The deployed config (config/serve.yaml on a free port), shared by the session."""
    config = serve_config_on(free_port())
    deploy(config)
    return config


@pytest.fixture(scope="session")
def serve_url(base_config) -> str:
    """The real app from config/serve.yaml, over real HTTP, started once per session."""
    url = f"http://127.0.0.1:{base_config['http_options']['port']}"
    wait_until(lambda: answers_200(url + "/healthz"), 60, what="/healthz")
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A real PostgreSQL server for the session, started here and stopped after. Its folder is
    under /tmp itself: pytest's own temporary folders are private to root, and the server runs
    as the `postgres` user."""
    try:
        server = PostgresServer(Path(tempfile.mkdtemp(prefix="vision-postgres-")))
    except FileNotFoundError as err:
        pytest.skip(str(err))
    yield server.url
    server.stop()
