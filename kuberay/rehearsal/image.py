"""What the pods run: containers of the project's images where podman runs them (built as
`make image` builds them), else the project's venv and tree with the Dockerfile's ENV."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from container import build, standin
from container.engine import Engine, find
from vision_core.paths import ROOT

VENV_BIN = Path(sys.executable).parent  # not resolved: the venv's bin, with ray, serve, python
CPU_TORCH = build.dockerfile_arg("TORCH_INDEX")  # the train target's default: PyTorch's CPU index


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
    return env, [f"Pods without an image run {VENV_BIN} (the project's venv) with PYTHONPATH "
                 f"and the working directory {ROOT} standing in for {workdir}; the Dockerfile's "
                 "ENV is applied, HOME is the pod's private /tmp; no container runtime, so CPU "
                 "and memory limits are not enforced (they only become --num-cpus and --memory, "
                 "as the operator passes them), seccomp is not applied, and claims are seen at "
                 "/tmp/pvc/<claim> (the RayJob entrypoint's paths under the mountPaths are "
                 "rewritten to it)."]


def prepare(tags: set[str], use_images: bool = True
            ) -> tuple[Engine | None, set[str], list[str]]:
    """Build the images the manifests name, as `make image` does, where podman can run them:
    (the engine, the tags pods can run as containers, how the run differs for want of the rest).
    A tag not built here, or no engine at all, means that tag's pods run the project's venv."""
    engine, why = find() if use_images else (None, "--pods venv")
    if engine is not None and engine.name != "podman":
        engine, why = None, "docker cannot join a pod's network namespace by path; podman can"
    if engine is not None:
        try:
            base, line = build.choose_base(engine)
            print(f"rehearse: {line}", flush=True)
        except standin.Unavailable as err:
            engine, why = None, str(err)
    if engine is not None:
        probe = engine.run("--rm", "--network", "none", base, "true", check=False, timeout=120)
        if probe.returncode != 0:
            lines = probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"]
            engine, why = None, f"podman cannot run a container here: {lines[-1]}"
    if engine is None:
        return None, set(), [f"No container runtime ({why}): every pod runs {VENV_BIN} (the "
                             f"project's venv) instead of an image."]
    ready, notes = set(), []
    for tag in sorted(tags):
        target = next((t for t in build.TARGETS if build.image_tag(t) == tag), None)
        if target == "serve":
            build.build(engine, target, base)
            ready.add(tag)
        elif target == "train" and torch_index(engine, tag) == CPU_TORCH:
            build.build(engine, target, base)  # the current code; the torch layer is reused
            ready.add(tag)
        elif target == "train" and engine.exists(tag):
            notes.append(f"{tag} here carries torch from {torch_index(engine, tag)}, not the CPU "
                         f"build the RayJob's limits are sized for (kuberay/README.md, "
                         f"Rehearsal): its pods run {VENV_BIN} (the project's venv) instead.")
        else:
            notes.append(f"{tag} is not built here (`make image TARGET=train`; the PyTorch CPU "
                         f"wheel index must be reachable): its pods run {VENV_BIN} (the "
                         f"project's venv) instead.")
    return engine, ready, notes


def torch_index(engine: Engine, tag: str) -> str | None:
    """The index a train image took torch from (its label); None if there is no such image."""
    if not engine.exists(tag):
        return None
    label = engine("image", "inspect", "--format",
                   '{{index .Config.Labels "vision-ai.torch-index"}}', tag, check=False)
    return label.stdout.strip() or None
