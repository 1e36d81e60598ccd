"""`make image`: build the project's image with docker or podman, on Ray's upstream base where it
can be pulled and on the local stand-in otherwise (saying which in one line), then print its tag
and size. `--target train` builds the training image (CPU torch, for the RayJob).

    python3 -m container.build [--target serve|train] [--base IMAGE] [--torch-index URL]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from container import standin
from container.engine import Engine, find

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
REPOSITORY = "vision-ai"
TARGETS = ("serve", "train")


def dockerfile_arg(name: str) -> str:
    """The default of `ARG name=...` in the Dockerfile: the one home of the upstream base's tag."""
    found = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    if not found:
        raise LookupError(f"Dockerfile has no `ARG {name}=<default>`")
    return found.group(1)


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def ray_version() -> str:
    (pin,) = [re.fullmatch(r"ray\[[a-z,]+\]==([0-9.]+)", d).group(1)
              for d in pyproject()["dependencies"] if d.startswith("ray[")]
    return pin


def image_tag(target: str = "serve") -> str:
    """vision-ai:<version> for serving (what the RayService runs), vision-ai:<version>-train."""
    version = pyproject()["version"]
    return f"{REPOSITORY}:{version}" + ("" if target == "serve" else f"-{target}")


def pull(engine: Engine, image: str) -> str | None:
    """None once `image` is in the engine's storage, else why it could not be pulled."""
    if engine.exists(image):
        return None
    first = image.split("/")[0]
    has_registry = "/" in image and ("." in first or ":" in first or first == "localhost")
    # Podman may be set up to ask which registry a short name means; Docker Hub is meant.
    name = image if engine.name == "docker" or has_registry else f"docker.io/{image}"
    try:
        done = engine("pull", "--quiet", name, check=False, timeout=180)
    except subprocess.TimeoutExpired:
        return "no answer within 180 s"
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    # The end of the chain of causes, e.g. "dial tcp: lookup registry-1.docker.io ...: no such host"
    return ": ".join(lines[-1].split(": ")[-3:]) if lines else f"exit code {done.returncode}"


def choose_base(engine: Engine) -> tuple[str, str]:
    """(the base image to build on, one line saying which it is and why)."""
    upstream = dockerfile_arg("BASE_IMAGE")
    why = pull(engine, upstream)
    if why is None:
        return upstream, f"base: {upstream} (upstream)"
    tag, built = standin.ensure(engine, ray_version())
    how = "built now" if built else "cached"
    return tag, (f"base: {tag} (the local stand-in, {how}; docs/standin-base.md), because "
                 f"{upstream} could not be pulled: {why}")


def build(engine: Engine, target: str = "serve", base: str | None = None,
          no_cache: bool = False, torch_index: str | None = None) -> dict:
    """Build one target; what `make image` prints, as data (the tests and the rehearsal use it)."""
    if base is None:  # else the caller chose, and said so
        base, line = choose_base(engine)
        print(line, flush=True)
    tag = image_tag(target)
    build_args = {"BASE_IMAGE": base, **({"TORCH_INDEX": torch_index} if torch_index else {})}
    seconds = engine.build(ROOT, tag, file=DOCKERFILE, target=target, build_args=build_args,
                           no_cache=no_cache)
    return {"tag": tag, "target": target, "base": base,
            "engine": engine.name, "seconds": round(seconds, 1),
            "size_mb": round(engine.size_bytes(tag) / 1e6)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=TARGETS, default="serve")
    parser.add_argument("--base", help="build on this image (skips the upstream/stand-in choice)")
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    parser.add_argument("--torch-index", help="the wheel index torch comes from (train target; "
                        "default: the Dockerfile's, PyTorch's CPU index)")
    args = parser.parse_args(argv)
    engine, why = find()
    if engine is None:
        print(f"make image: {why}", file=sys.stderr)
        return 1
    if args.base:
        print(f"base: {args.base} (given)", flush=True)
    try:
        result = build(engine, args.target, args.base, args.no_cache, args.torch_index)
    except standin.Unavailable as err:
        print(f"make image: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"make image: {engine.name} build failed with exit code {err.returncode} (its "
              "output above says why)", file=sys.stderr)
        if args.target == "train" and not args.torch_index:
            print(f"make image: the train target takes torch from {dockerfile_arg('TORCH_INDEX')}"
                  " only; where that is out of reach, TORCH_INDEX=https://pypi.org/simple takes "
                  "PyPI's Linux torch instead (a CUDA build, about 6.8 GB of image)",
                  file=sys.stderr)
        return 1
    print(f"{result['tag']}  {result['size_mb']} MB  (built with {engine.name} in "
          f"{result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
