"""schemathesis, against the service's own OpenAPI schema: no 5xx, no schema violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray


def test_schemathesis_finds_no_server_error_or_schema_violation(serve_url, tmp_path):
    cli = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    run = subprocess.run(
        [cli, "run", f"{serve_url}/openapi.json",
         "--checks", "not_a_server_error,status_code_conformance,"
                     "content_type_conformance,response_schema_conformance",
         "--max-examples", "25", "--seed", "1", "--request-timeout", "20",
         "--phases", "examples,coverage,fuzzing"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
