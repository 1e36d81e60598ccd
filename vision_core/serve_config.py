"""config/serve.yaml as the tools around the service read it: the one place that loads it and
derives its variants.

The service itself never reads this file: Serve does, and gives each deployment its part. The
tests, the benchmarks, the image (`python -m vision_core.serve_config --host 0.0.0.0`) and
kuberay/sync.py (the RayService's serveConfigV2) all derive their copy here, so they cannot
each change it their own way.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import yaml

from vision_core.paths import ROOT

SERVE_YAML = ROOT / "config" / "serve.yaml"
APP = "vision"  # the application's name in config/serve.yaml


def load(path: str | Path = SERVE_YAML) -> dict:
    """The config as Serve sees it (YAML anchors and merge keys expanded)."""
    return yaml.safe_load(Path(path).read_text())


def app(config: dict) -> dict:
    """The vision application's entry of a config."""
    return next(a for a in config["applications"] if a["name"] == APP)


def serve_env(config: dict | None = None) -> dict[str, str]:
    """Serve's process settings (`controller_options.runtime_env.env_vars`), for code that starts
    Serve without this file (benchmarks/two_node.py, the floor's own app)."""
    config = load() if config is None else config
    return dict(config["controller_options"]["runtime_env"]["env_vars"])


def for_host(config: dict, host: str, **http_options) -> dict:
    """A copy that listens on `host` (and any other http_options given, e.g. a test's port).
    config/serve.yaml binds 127.0.0.1 for local runs; a container or a pod needs 0.0.0.0."""
    out = copy.deepcopy(config)
    out["http_options"].update(host=host, **http_options)
    # Serve ignores top-level keys it does not know: the anchors' holders are not copied.
    return {k: v for k, v in out.items() if not k.startswith("x-")}


def dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vision_core.serve_config", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", required=True, help="the address Serve listens on, e.g. 0.0.0.0")
    p.add_argument("out", help="where the derived config goes")
    args = p.parse_args(argv)
    Path(args.out).write_text(f"# Derived from {SERVE_YAML.relative_to(ROOT)} by "
                              f"vision_core.serve_config: edit that file, not this one.\n"
                              + dump(for_host(load(), args.host)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
