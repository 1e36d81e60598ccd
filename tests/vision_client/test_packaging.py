"""vision_client/pyproject.toml: the client installs alone, with only what it imports.

The wheel is built offline from a copy of the folder (no build isolation: the venv's setuptools),
and its metadata and contents are read, not installed.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile

from vision_core.paths import ROOT

CLIENT = ROOT / "vision_client"


def test_the_clients_wheel_requires_only_what_the_client_imports(tmp_path) -> None:
    source = tmp_path / "vision_client"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("vision_ai_client-*.whl")
    with zipfile.ZipFile(wheel) as z:
        files = set(z.namelist())
        meta = z.read(next(n for n in files if n.endswith("METADATA"))).decode()
        entry = z.read(next(n for n in files if n.endswith("entry_points.txt"))).decode()
    requires = {line.split(":", 1)[1].strip().split(">")[0].split("=")[0]
                for line in meta.splitlines() if line.startswith("Requires-Dist:")}
    assert requires == {"requests", "tqdm"}
    assert {f for f in files if not f.startswith("vision_ai_client-")} == \
        {"vision_client/__init__.py", "vision_client/__main__.py", "vision_client/cli.py"}
    assert "vision-ai = vision_client.cli:main" in entry
    # And the client's code imports nothing else outside the standard library.
    imported = {n.split(".")[0] for path in CLIENT.glob("*.py")
                for node in ast.walk(ast.parse(path.read_text()))
                for n in ([a.name for a in node.names] if isinstance(node, ast.Import) else
                          [node.module] if isinstance(node, ast.ImportFrom) and node.module
                          and node.level == 0 else [])}
    assert imported - set(sys.stdlib_module_names) - {"__future__"} == \
        {"requests", "tqdm", "vision_client"}
