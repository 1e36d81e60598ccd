"""The local stand-in for Ray's upstream base image (rayproject/ray:<ray>-py311-cpu), for machines
that cannot pull it: a Debian root filesystem (mmdebstrap) with Python 3.11 and PyPI's
ray[serve]. What it provides and how it differs: docs/standin-base.md.

It is tagged with a hash of its recipe (standin/rootfs.sh, standin/Containerfile and the Ray
pin), built once per recipe and then reused from the engine's storage: CI's runs share it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from container.engine import Engine

RECIPE = Path(__file__).resolve().parent / "standin"
REPOSITORY = "localhost/vision-ai-base"
ROOTFS_REPOSITORY = "localhost/vision-ai-base-rootfs"


class Unavailable(RuntimeError):
    """This machine lacks what the stand-in is built with; the message says how to get it."""


def recipe_hash(ray_version: str) -> str:
    digest = hashlib.sha256(ray_version.encode())
    for path in sorted(RECIPE.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def tags(ray_version: str) -> tuple[str, str]:
    """(the stand-in's tag, its root filesystem's tag) for the current recipe."""
    h = recipe_hash(ray_version)
    return f"{REPOSITORY}:ray{ray_version}-py311-{h}", f"{ROOTFS_REPOSITORY}:{h}"


def ensure(engine: Engine, ray_version: str) -> tuple[str, bool]:
    """The stand-in's tag, built first if this recipe has not been; and whether it was built."""
    tag, rootfs = tags(ray_version)
    if engine.exists(tag):
        return tag, False
    if not engine.exists(rootfs):
        if not shutil.which("mmdebstrap"):
            raise Unavailable("the local stand-in base is built with mmdebstrap: "
                              "apt-get install mmdebstrap")
        print(f"stand-in base: root filesystem from Debian's packages -> {rootfs}", flush=True)
        make = subprocess.Popen(["nice", "-n", "10", "sh", str(RECIPE / "rootfs.sh")],
                                stdout=subprocess.PIPE)
        engine("import", "-", rootfs, stdin=make.stdout, capture=False)
        make.stdout.close()
        if make.wait() != 0:
            engine("rmi", rootfs, check=False)
            raise RuntimeError(f"rootfs.sh failed with exit code {make.returncode}")
    print(f"stand-in base: Python venv and ray[serve]=={ray_version} from PyPI -> {tag}",
          flush=True)
    engine.build(RECIPE, tag, file=RECIPE / "Containerfile",
                 build_args={"ROOTFS": rootfs, "RAY_VERSION": ray_version})
    prune(engine, keep={tag, rootfs})
    return tag, True


def prune(engine: Engine, keep: set[str]) -> list[str]:
    """Remove the stand-in images of earlier recipes (only those: nothing else is touched)."""
    listed = engine("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    old = [t for t in listed if t.rsplit(":", 1)[0] in (REPOSITORY, ROOTFS_REPOSITORY)
           and t not in keep]
    for tag in old:
        engine("rmi", tag, check=False)
    return old
