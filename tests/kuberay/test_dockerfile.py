"""Dockerfile and .dockerignore: the upstream base as a build argument, a `serve` target without
torch (the default) and a `train` target with it, non-root, code + config + models baked in,
pip settings only as build secrets, and a default command that serves config/serve.yaml reachable
from outside the container. tests/container/ builds and runs the image itself."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from vision_core.paths import ROOT
from vision_core.serve_config import for_host, load

CONTAINER_CONFIG = "config/serve.container.yaml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def argv(args: str) -> list[str]:
    """CMD arguments as an argv list: JSON exec form, or shell form."""
    return yaml.safe_load(args) if args.startswith("[") else shlex.split(args)


def instructions(dockerfile, keyword: str) -> list[str]:
    return [args for k, args in dockerfile if k == keyword]


def pip_installs(dockerfile) -> list[str]:
    return [a for a in instructions(dockerfile, "RUN") if "pip install" in a]


def test_the_base_is_a_build_argument_defaulting_to_ray_upstream(dockerfile_stages) -> None:
    (default,) = [a for k, a in dockerfile_stages[""] if k == "ARG"]
    assert re.fullmatch(r"BASE_IMAGE=rayproject/ray:\S+", default), default
    assert dockerfile_stages["base"][0] == ("FROM", "${BASE_IMAGE} AS base")


def test_serve_is_the_default_target_and_train_is_the_other(dockerfile_stages) -> None:
    assert list(dockerfile_stages)[-1] == "serve"  # an untargeted build builds the last stage
    assert {"serve", "train"} <= set(dockerfile_stages)


def test_every_target_runs_as_the_non_root_ray_user(dockerfile_stages) -> None:
    for target in ("serve", "train"):
        user = instructions(dockerfile_stages[target], "USER")[-1]
        assert user == "1000:100", f"{target}: last USER is {user}"


def test_the_serve_target_installs_no_torch(dockerfile_stages) -> None:
    (install,) = pip_installs(dockerfile_stages["serve"])
    assert "['project']['dependencies']" in install and "optional-dependencies" not in install
    assert "torch" not in install
    assert not [d for d in PYPROJECT["dependencies"] if re.match(r"torch|ray\[.*train", d)]


def test_the_train_target_takes_torch_from_the_cpu_wheel_index_only(dockerfile_stages) -> None:
    base, extra = pip_installs(dockerfile_stages["train"])
    assert "['project']['dependencies']" in base
    assert "['project']['optional-dependencies']['train']" in extra
    # torch alone from TORCH_INDEX (no PyPI fallback to its CUDA build), then the rest.
    assert 'pip install --no-cache-dir --index-url "${TORCH_INDEX}" -r /tmp/torch.txt' in extra
    assert "--extra-index-url" not in extra
    assert "TORCH_INDEX=https://download.pytorch.org/whl/cpu" in instructions(
        dockerfile_stages["train"], "ARG")
    assert any(re.match(r"torch==", d) for d in PYPROJECT["optional-dependencies"]["train"])
    assert "--from=app /home/ray/app/ /home/ray/app/" in instructions(
        dockerfile_stages["train"], "COPY")


def test_pip_gets_the_hosts_settings_as_build_secrets_only(dockerfile) -> None:
    for install in pip_installs(dockerfile):
        assert "--no-cache-dir" in install
        for secret in ("pip_cert", "pip_index_url"):
            assert f"--mount=type=secret,id={secret}" in install
    for keyword in ("ENV", "ARG"):
        assert not [a for a in instructions(dockerfile, keyword) if "PIP_" in a]


def test_bakes_in_code_config_and_models_and_training_only_for_train(dockerfile_stages) -> None:
    serve = {args.split()[0] for args in instructions(dockerfile_stages["serve"], "COPY")}
    assert {"pyproject.toml", "vision_core/", "serve_app/", "config/", "models/"} <= serve
    assert "training/" not in serve  # serving imports only vision_core (tests/test_imports.py)
    train = {args.split()[0] for args in instructions(dockerfile_stages["train"], "COPY")}
    assert "training/" in train


def test_cmd_checks_the_limits_then_serves_the_container_copy_of_config_serve_yaml(
        dockerfile) -> None:
    (cmd,) = instructions(dockerfile, "CMD")
    script = " ".join(argv(cmd))
    assert script.startswith(f"bash -c python container/preflight.py {CONTAINER_CONFIG} && ")
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
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data", "runs", "tests", "**/__pycache__", "container"} <= set(
        ignored)
    # Of container/, only the start-up check the CMD runs goes in.
    assert ignored[ignored.index("container") + 1] == "!container/preflight.py"
