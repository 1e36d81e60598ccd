"""vision_core/paths.py: a relative path means the project's file, whatever directory a command
starts in (`serve run`, a RayJob's working dir, a test runner)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from vision_core.paths import ROOT, resolve


def test_a_relative_path_finds_the_project_file_from_another_directory(tmp_path: Path) -> None:
    """A fresh process started in an empty directory: a plain Path would point into it."""
    code = "from vision_core.paths import resolve; print(resolve('models/mnist_cnn.pt'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    found = Path(out.stdout.strip())
    assert found == ROOT / "models" / "mnist_cnn.pt" and found.is_file()
    assert not (tmp_path / "models").exists()


def test_an_absolute_path_is_kept() -> None:
    assert resolve("/abs/x.pt") == Path("/abs/x.pt")
