"""Where a request's CPU goes, per Serve process.

`python -m benchmarks.profile [--case single|canvas|batch64] [--seconds 20]` starts the service
from config/serve.yaml (as `make serve`) and Ray's floor (benchmarks/floor_app.py) in turn, and
for each counts the CPU milliseconds every process spends per request while wrk sends requests
one at a time: the difference is what our code costs, process by process. Then py-spy samples
each of the service's replicas under the same load, and the stacks are summed by function.
Writes benchmarks/results/profile-<case>.txt. py-spy needs ptrace rights (root, or
kernel.yama.ptrace_scope=0); sampling is non-blocking, so the processes are not paused. Its
shares are of samples, not CPU time: a thread that waits for a core is sampled too.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import tempfile
import threading
from pathlib import Path

import psutil

from benchmarks import wrk
from benchmarks.bodies import bodies
from benchmarks.report import RESULTS
from benchmarks.servers import PY, SERVE, SERVE_URL, Server, floor_config, kinds_of, process_kind
from vision_core.paths import ROOT
from vision_core.serve_config import serve_env

PY_SPY = str(Path(PY).parent / "py-spy")
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def replicas(server: Server) -> dict[str, int]:
    """Serve deployment name -> the pid of its first replica (names from process_kind)."""
    found = {}
    for kind, pid in kinds_of(server):
        if kind.startswith("replica "):
            found.setdefault(kind.removeprefix("replica "), pid)
    return found


def _short(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", str(ROOT) + "/"):
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


def cpu_per_request(server: Server, url: str, body: bytes, seconds: int) -> tuple[dict, int]:
    """CPU ms per answered request, summed by kind of process, over one wrk run at c=1."""
    def times() -> dict[int, tuple[str, float]]:
        out = {}
        for p in server._tree():
            try:
                t = p.cpu_times()
                out[p.pid] = (process_kind(" ".join(p.cmdline())), t.user + t.system)
            except psutil.Error:
                pass
        return out

    before = times()
    result = wrk.run(url, body, 1, seconds)
    after = times()
    by_kind: dict[str, float] = collections.defaultdict(float)
    for pid, (kind, cpu) in after.items():
        by_kind[kind] += cpu - before.get(pid, (kind, 0.0))[1]
    return ({k: 1000 * v / max(1, result.requests) for k, v in by_kind.items()},
            result.requests)


def cpu_table(case: str, seconds: int, config: str) -> list[str]:
    """The service against Ray's floor: CPU ms per request by process, same body, same load."""
    path, body, _, _ = bodies()[case]
    env = serve_env() | {"PYTHONPATH": str(ROOT)}
    probe = ("/mnist", bodies()["single"][1])
    columns = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, path_ in (("floor", str(floor_config(Path(tmp)))),
                              ("serve", config)):
            server = Server([SERVE, "run", path_], SERVE_URL, probe, env)
            try:
                wrk.run(server.url + "/mnist", body, 1, 3)  # warm-up
                url = server.url + (path if label == "serve" else "/mnist")
                columns[label] = cpu_per_request(server, url, body, seconds)
            finally:
                server.stop()
    kinds = sorted(set(columns["floor"][0]) | set(columns["serve"][0]),
                   key=lambda k: -columns["serve"][0].get(k, 0))
    lines = [f"CPU ms per request at c=1, {case} body, {seconds} s of wrk each "
             f"(requests: floor {columns['floor'][1]}, serve {columns['serve'][1]})",
             "  process                                   floor   serve   difference"]
    for k in kinds:
        f, s = columns["floor"][0].get(k, 0.0), columns["serve"][0].get(k, 0.0)
        if max(f, s) >= 0.05:
            lines.append(f"  {k[:40]:40} {f:7.2f} {s:7.2f} {s - f:+9.2f}")
    total_f, total_s = sum(columns["floor"][0].values()), sum(columns["serve"][0].values())
    lines.append(f"  {'all':40} {total_f:7.2f} {total_s:7.2f} {total_s - total_f:+9.2f}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--case", default="single", choices=("single", "canvas", "batch64"))
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--no-spy", action="store_true", help="the CPU table only")
    p.add_argument("--config", default="config/serve.yaml", help="the service's Serve config")
    args = p.parse_args()
    cpu_lines = cpu_table(args.case, args.seconds, args.config)
    print("\n".join(cpu_lines), flush=True)
    if args.no_spy:
        return
    path, body, images, _ = bodies()[args.case]
    server = Server([SERVE, "run", args.config], SERVE_URL,
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
    lines = [*cpu_lines, "", *lines]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"profile-{args.case}.txt"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
