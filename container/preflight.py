"""Checks the image's CMD runs before starting Ray: limits the container engine sets, which the
service needs, each refused with one line saying how to fix it (README, "The image").

Run as `python container/preflight.py CONFIG`; standard library and PyYAML only.
"""

from __future__ import annotations

import os
import resource
import sys

# Serve's HAProxy asked for 10,276 open files at start with Ray's default maxconn (4096,
# RAY_SERVE_HAPROXY_MAXCONN) and crashed when the hard limit was lower ("Cannot raise FD limit").
HAPROXY_MIN_OPEN_FILES = 10_300


def haproxy_enabled(config: dict) -> bool:
    """Serve's HAProxy mode, as config/serve.yaml's controller_options (or the env) turn it on."""
    env = (((config.get("controller_options") or {}).get("runtime_env") or {})
           .get("env_vars") or {})
    return str(env.get("RAY_SERVE_ENABLE_HA_PROXY", os.environ.get(
        "RAY_SERVE_ENABLE_HA_PROXY", "0"))) == "1"


def problems(config: dict, hard_open_files: int) -> list[str]:
    if haproxy_enabled(config) and 0 <= hard_open_files < HAPROXY_MIN_OPEN_FILES:
        return [f"Serve's HAProxy needs a hard open-files limit of at least "
                f"{HAPROXY_MIN_OPEN_FILES}; this container has {hard_open_files}. Start it with "
                f"`--ulimit nofile=1024:16384` (docker run / podman run), or on Kubernetes raise "
                f"the node's container limit."]
    return []


def main(argv: list[str]) -> int:
    import yaml

    (path,) = argv
    with open(path) as f:
        config = yaml.safe_load(f)
    found = problems(config, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    for line in found:
        print(f"vision-ai: cannot start: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
