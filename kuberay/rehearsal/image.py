"""What stands in for the image: the project's venv and tree, with the Dockerfile's ENV."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from vision_core.paths import ROOT

VENV_BIN = Path(sys.executable).parent  # not resolved: the venv's bin, with ray, serve, python


def dockerfile_env(path: Path = ROOT / "Dockerfile") -> dict[str, str]:
    """Every `ENV key=value ...` of the Dockerfile, continuation lines joined."""
    env, text = {}, path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    return env


def base_env() -> tuple[dict[str, str], list[str]]:
    """The environment every pod starts from, and how it differs from the image's."""
    env = dockerfile_env()
    workdir = env.get("PYTHONPATH", "the image's WORKDIR")
    env.update(PYTHONPATH=str(ROOT), HOME="/tmp", LANG="C.UTF-8",
               PATH=f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin")
    return env, [f"No image is built: each pod runs {VENV_BIN} (the project's venv) with "
                 f"PYTHONPATH and the working directory {ROOT} standing in for {workdir}; "
                 "the Dockerfile's ENV is applied, HOME is the pod's private /tmp."]
