"""Where a request's CPU goes, per Serve process: py-spy samples each replica while wrk sends
single requests, one at a time, and the stacks are summed by function.

`python -m benchmarks.profile [--case single|canvas] [--seconds 20]` starts the service from
config/serve.yaml (as `make serve`), profiles, stops it, and writes
benchmarks/results/profile-<case>.txt. py-spy needs ptrace rights (root, or
kernel.yama.ptrace_scope=0). Sampling is non-blocking, so the profiled processes are not paused.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import threading
from pathlib import Path

import psutil

from benchmarks import wrk
from benchmarks.serve_bench import PY, RESULTS, SERVE, Server, bodies
from serve_app.settings import ROOT, serve_env

PY_SPY = str(Path(PY).parent / "py-spy")
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def replicas(server: Server) -> dict[str, int]:
    """Serve deployment name -> the pid of its first replica."""
    found = {}
    for p in server._tree():
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if cmd.startswith("ray::ServeReplica:"):
            found.setdefault(cmd.split(":")[-1].split()[0], p.pid)
    return found


def _short(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "/work/main/", str(ROOT) + "/"):
        path = path.split(marker)[-1]
    return f"{m['func']} ({path})"


def summarise(raw: str, top: int) -> list[str]:
    """py-spy's collapsed stacks -> the functions with the largest inclusive and own shares."""
    inclusive, own, total = collections.Counter(), collections.Counter(), 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")[1:]]  # [0] is the thread
        total += n
        for f in set(frames):
            inclusive[f] += n
        if frames:
            own[frames[-1]] += n
    if not total:
        return ["  (no samples: the process was idle)"]
    out = [f"  {total} samples"]
    out += ["  inclusive:"] + [f"    {100 * n / total:5.1f}%  {f}"
                               for f, n in inclusive.most_common(top)]
    out += ["  own:"] + [f"    {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--case", default="single", choices=("single", "canvas", "batch64"))
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    path, body, images, _ = bodies()[args.case]
    server = Server([SERVE, "run", "config/serve.yaml"], "http://127.0.0.1:8000",
                    ("/mnist", bodies()["single"][1]), serve_env())
    try:
        pids = replicas(server)
        wrk.run(server.url + path, body, args.concurrency, 3, images)  # warm-up
        result = {}
        load = threading.Thread(target=lambda: result.update(r=wrk.run(
            server.url + path, body, args.concurrency, args.seconds + 4, images)))
        load.start()
        spies = {name: subprocess.Popen(
            [PY_SPY, "record", "--pid", str(pid), "--duration", str(args.seconds), "--rate",
             "250", "--nonblocking", "--format", "raw", "--output", "/dev/stdout"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            for name, pid in pids.items()}
        lines = [f"case {args.case}, c={args.concurrency}, {args.seconds} s of py-spy at 250 Hz "
                 f"per replica, non-blocking"]
        for name, spy in spies.items():
            raw, _ = spy.communicate(timeout=args.seconds + 60)
            lines += [f"\n{name} (pid {pids[name]})", *summarise(raw, args.top)]
        load.join()
        lines.insert(1, f"wrk: {result['r'].row()}")
    finally:
        server.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"profile-{args.case}.txt"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
