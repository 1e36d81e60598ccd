"""The container engine on this machine: docker where its daemon answers, else podman; with the
flags each needs here, so that `make image`, the container tests and the rehearsal agree."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HOW_TO_GET_ONE = ("install podman (apt-get install podman buildah runc uidmap) or start a Docker "
                  "engine")


@dataclass
class Engine:
    """One engine's command line, and the flags its `run` needs on this machine."""

    name: str                                  # "docker" or "podman"
    argv: list[str]                            # the command and its global flags
    run_flags: list[str] = field(default_factory=list)

    def __call__(self, *args: str, check: bool = True, timeout: float | None = None,
                 capture: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([*self.argv, *args], check=check, timeout=timeout, text=True,
                              capture_output=capture, **kwargs)

    def exists(self, image: str) -> bool:
        return self("image", "inspect", image, check=False).returncode == 0

    def size_bytes(self, image: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())

    def health(self, container: str) -> str:
        """The HEALTHCHECK's verdict: "starting", "healthy" or "unhealthy". Docker runs the check
        on its interval; podman runs it from systemd timers, which a machine without systemd
        lacks, so it is asked to run the check once first."""
        if self.name == "podman":
            self("healthcheck", "run", container, check=False, timeout=60)
        return self("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()

    def memory_bytes(self, container: str) -> int:
        """The container's memory use as `stats` shows it (cgroup usage less the page cache)."""
        shown = self("stats", "--no-stream", "--format", "{{.MemUsage}}", container).stdout
        return parse_bytes(shown.split("/")[0])

    def run_argv(self, *args: str) -> list[str]:
        """`<engine> run <this machine's flags> <args>` as an argv list."""
        return [*self.argv, "run", *self.run_flags, *args]

    def run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """`<engine> run <this machine's flags> <args>`."""
        return self("run", *self.run_flags, *args, **kwargs)

    def build(self, context: Path, tag: str, *, file: Path | None = None,
              target: str | None = None, build_args: dict[str, str] | None = None,
              no_cache: bool = False) -> float:
        """Build `tag` from `context`, its output streamed to ours; the seconds it took. The
        host's pip certificate and index reach RUN steps as build secrets, never as layers."""
        # --force-rm: a failed build leaves no intermediate container behind either.
        args = ["build", "--force-rm", "-t", tag, *(["-f", str(file)] if file else []),
                *(["--target", target] if target else [])]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", f"{key}={value}"]
        if self.name == "podman":
            # Docker's format: the OCI format has no HEALTHCHECK, and podman would drop it.
            args += ["--format", "docker", *self.run_flags]  # RUN steps: the same ulimits
        if no_cache:
            args.append("--no-cache")
        with pip_secrets() as secrets:
            t0 = time.monotonic()
            # nice: a build must not slow down a training or a benchmark beside it.
            subprocess.run(["nice", "-n", "10", *self.argv, *args, *secrets, str(context)],
                           check=True)
        return time.monotonic() - t0


UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str) -> int:
    """"1.455GB" (podman) or "1.4GiB" (docker) as a number of bytes."""
    number, unit = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text).groups()
    return round(float(number) * UNITS[unit.lower() or "b"])


@contextlib.contextmanager
def pip_secrets() -> Iterator[list[str]]:
    """`--secret` flags for the host's pip CA bundle and index URL, where it has them (a RUN
    step reads /run/secrets/pip_cert and /run/secrets/pip_index_url)."""
    flags = []
    cert = next((c for c in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                             "/etc/ssl/certs/ca-certificates.crt") if c and Path(c).is_file()),
                None)
    with tempfile.TemporaryDirectory(prefix="vision-ai-build-") as tmp:
        if cert:
            flags += ["--secret", f"id=pip_cert,src={cert}"]
        if os.environ.get("PIP_INDEX_URL"):
            index = Path(tmp) / "pip_index_url"
            index.touch(mode=0o600)
            index.write_text(os.environ["PIP_INDEX_URL"])
            flags += ["--secret", f"id=pip_index_url,src={index}"]
        yield flags


def _answers(argv: list[str]) -> str | None:
    """None if `argv` exits 0 within 60 s, else why not (its last line of output)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {done.returncode}"


def podman_run_flags() -> list[str]:
    """Podman's default ulimits are refused where the caller's hard limits are lower than what it
    asks for ("setrlimit RLIMIT_NPROC: Operation not permitted"): explicit values within ours.
    The open-files soft limit stays at Docker's default (1024); the hard one is what HAProxy
    needs, or as much as this process may give."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nofile = 65536 if nofile == resource.RLIM_INFINITY else min(nofile, 65536)
    nproc = 16384 if nproc == resource.RLIM_INFINITY else min(nproc, 16384)
    return ["--ulimit", f"nofile=1024:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def find() -> tuple[Engine | None, str]:
    """The engine to use, or None and one line saying what is missing and how to get it."""
    reasons = []
    if shutil.which("docker"):
        why = _answers(["docker", "info"])
        if why is None:
            return Engine("docker", ["docker"]), "docker"
        reasons.append(f"docker: {why}")
    if shutil.which("podman"):
        # crun, podman's default runtime, fails on hybrid cgroup layouts; runc works there.
        argv = ["podman", *(["--runtime", "runc"] if shutil.which("runc") else [])]
        why = _answers([*argv, "info"])
        if why is None:
            return Engine("podman", argv, podman_run_flags()), "podman"
        reasons.append(f"podman: {why}")
    if not reasons:
        return None, f"no container engine (docker or podman) found: {HOW_TO_GET_ONE}"
    return None, f"no working container engine ({'; '.join(reasons)}): {HOW_TO_GET_ONE}"
