"""Closed-loop load with `wrk` (written in C): the load costs the server's 2 cores little.

A Python client on the same cores adds the same milliseconds to every server it measures and
throttles the faster one (issue 13), so every HTTP figure of `make bench` comes from here.
`wrk` is a Debian package (`apt-get install wrk`); benchmarks/post.lua posts one body.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("post.lua")


@dataclass
class Result:
    concurrency: int
    images_per_request: int
    requests: int       # answered with 2xx/3xx
    errors: int         # connection errors, timeouts and non-2xx/3xx answers
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    def row(self) -> dict:
        return {"c": self.concurrency, "req_s": round(self.requests_per_s, 1),
                "img_s": round(self.requests_per_s * self.images_per_request, 1),
                "p50_ms": round(self.p50_ms, 2), "p90_ms": round(self.p90_ms, 2),
                "p99_ms": round(self.p99_ms, 2), "errors": self.errors,
                "requests": self.requests + self.errors}


def available() -> str | None:
    """None when wrk can run, else what is missing and how to get it."""
    return None if shutil.which("wrk") else "wrk is missing: apt-get install wrk"


def run(url: str, body: bytes, concurrency: int, seconds: float, images: int = 1,
        content_type: str = "application/json", threads: int = 1,
        headers: dict[str, str] | None = None) -> Result:
    """`concurrency` connections, each sending `body` back to back for `seconds`.

    One wrk thread by default: it keeps 32 connections busy on one core-fraction, and every
    thread it adds is a thread the server's 2 cores share. `headers` are sent besides
    Content-Type (for example Inference-Header-Content-Length for binary tensors).
    """
    with tempfile.NamedTemporaryFile(suffix=".body") as f:
        f.write(body)
        f.flush()
        out = subprocess.run(
            ["wrk", f"-t{min(threads, concurrency)}", f"-c{concurrency}",
             f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s", str(SCRIPT), url],
            env={**os.environ, "WRK_BODY": f.name, "WRK_CONTENT_TYPE": content_type,
                 "WRK_HEADERS": "".join(f"{k}: {v}\n" for k, v in (headers or {}).items())},
            capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    out = out.stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    s = json.loads(line.removeprefix("WRKJSON "))
    # wrk counts non-2xx/3xx answers in `requests` too, and in errors.status.
    errors = s["connect"] + s["read"] + s["write"] + s["timeout"] + s["status"]
    return Result(concurrency, images, s["requests"] - s["status"], errors,
                  s["duration_us"] / 1e6, s["p50_us"] / 1000, s["p90_us"] / 1000,
                  s["p99_us"] / 1000)
