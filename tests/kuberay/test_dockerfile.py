"""Dockerfile and .dockerignore: pinned base, non-root, code + config + models baked in, and a
default command that serves config/serve.yaml reachable from outside the container."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from vision_core.paths import ROOT
from vision_core.serve_config import for_host, load

CONTAINER_CONFIG = "config/serve.container.yaml"


def argv(args: str) -> list[str]:
    """CMD arguments as an argv list: JSON exec form, or shell form."""
    return yaml.safe_load(args) if args.startswith("[") else shlex.split(args)


def instructions(dockerfile, keyword: str) -> list[str]:
    return [args for k, args in dockerfile if k == keyword]


def test_runs_as_the_non_root_ray_user(dockerfile) -> None:
    user = instructions(dockerfile, "USER")[-1]
    assert user.split(":")[0] in ("1000", "ray"), f"last USER is {user}"


def test_bakes_in_code_config_and_models(dockerfile) -> None:
    copied = {args.split()[0] for args in instructions(dockerfile, "COPY")}
    assert {"pyproject.toml", "vision_core/", "serve_app/", "config/", "models/"} <= copied


def test_installs_pinned_deps_from_the_cpu_wheel_index(dockerfile) -> None:
    (install,) = [a for a in instructions(dockerfile, "RUN") if "pip install" in a]
    assert "pyproject.toml" in install and "--no-cache-dir" in install
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in install


def test_cmd_serves_the_container_copy_of_config_serve_yaml(dockerfile) -> None:
    (cmd,) = instructions(dockerfile, "CMD")
    script = " ".join(argv(cmd))
    assert re.search(rf"\bexec serve run {re.escape(CONTAINER_CONFIG)}$", script), script
    assert "--dashboard-host=0.0.0.0" in script and "RAY_AUTH_MODE=token" in script


def test_container_config_differs_from_config_serve_yaml_only_in_host(dockerfile,
                                                                       tmp_path: Path) -> None:
    """Run the Dockerfile's own generating line, to a tmp path, and compare the result."""
    (run,) = [a for a in instructions(dockerfile, "RUN") if CONTAINER_CONFIG in a]
    *command, target = shlex.split(run)
    assert command == ["python", "-m", "vision_core.serve_config", "--host", "0.0.0.0"]
    assert target == CONTAINER_CONFIG
    out = tmp_path / "serve.container.yaml"
    subprocess.run([sys.executable, *command[1:], str(out)], cwd=ROOT, check=True)
    assert yaml.safe_load(out.read_text()) == for_host(load(), "0.0.0.0")


def test_exposes_serve_and_dashboard_and_checks_health(dockerfile, serve_config: dict) -> None:
    port = serve_config["http_options"]["port"]
    assert set(instructions(dockerfile, "EXPOSE")[0].split()) == {str(port), "8265"}
    (check,) = instructions(dockerfile, "HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/healthz" in check


def test_no_secret_is_baked_in(dockerfile) -> None:
    for keyword in ("ENV", "ARG"):
        for args in instructions(dockerfile, keyword):
            assert not re.search(r"KEY|TOKEN|PASSWORD|SECRET", args), f"{keyword} {args}"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data", "runs", "tests", "**/__pycache__"} <= ignored
