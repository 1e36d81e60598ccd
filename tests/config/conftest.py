"""Fixtures for the monitoring config tests (helpers: tests/helpers.py)."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.skip("promtool is missing: apt-get install prometheus (.ci/run installs it)")
    return found
