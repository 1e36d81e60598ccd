"""The staircase from Ray's floor to the service, one feature a step (benchmarks/staircase_app.py).

`python -m benchmarks.staircase [--rounds 3] [--seconds 4] [--first 1] [--last 10]`

For each step k, steps k-1 and k run as two applications of one Serve instance under
config/serve.yaml's process settings, and wrk bursts go to each in turn, `rounds` times, at c=1
and c=32: the two steps meet the same machine, seconds apart. For every burst, the CPU each
process spent is read (psutil) and its idle rate, measured first with no load, is subtracted:
what is left is per-request CPU, split into the ingress, the leaf (the classifier), the rest of
the app's replicas, the Serve controller, the proxy (HAProxy and its manager) and the rest
(raylet, GCS, agents). Writes benchmarks/results/staircase.json and .md; the table goes into
benchmarks/NOTES.md. Benchmarks are not tests: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil

from benchmarks import wrk
from benchmarks.bodies import bodies, wrk_args
from benchmarks.report import RESULTS
from benchmarks.servers import SERVE, SERVE_URL, Server
from benchmarks.staircase_app import LAST
from vision_core import serve_config
from vision_core.paths import ROOT

SERVICE = LAST + 1  # the last step: the service itself
IDLE_S = 10
GROUPS = ("ingress", "leaf", "other replicas", "controller", "proxy", "rest")
REPLICA = re.compile(r"ray::ServeReplica:([^:\s]+):(\w+)")  # ray::ServeReplica:<app>:<deployment>


def app_config(step: int, template: dict) -> dict:
    """Step `step` as an application at /s<step>, with the service's deployment options."""
    options = {d["name"]: d for d in template["deployments"]}
    if step == SERVICE:
        return {**template, "name": f"s{step}", "route_prefix": f"/s{step}"}
    keep = {k: v for k, v in options["Classifier_mnist"].items() if k != "user_config"}
    return {"name": f"s{step}", "route_prefix": f"/s{step}",
            "import_path": "benchmarks.staircase_app:build", "args": {"step": step},
            "deployments": [{**options["Ingress"], "name": "StepIngress"},
                            {**keep, "name": "StepLeaf"}]}


def pair_config(step: int, folder: Path) -> Path:
    """One Serve instance with steps step-1 and step."""
    config = serve_config.for_host(serve_config.load(), "127.0.0.1")
    template = serve_config.app(config)
    config["applications"] = [app_config(s, template) for s in (step - 1, step)]
    path = folder / f"staircase-{step}.yaml"
    path.write_text(serve_config.dump(config))
    return path


def group(cmdline: str, app: str) -> str | None:
    """Which part of the app's request path a process is; None for the other app's replicas."""
    replica = REPLICA.match(cmdline)
    if replica:
        owner, deployment = replica.groups()
        if owner != app:
            return None
        if deployment in ("StepIngress", "Ingress"):
            return "ingress"
        return "leaf" if deployment in ("StepLeaf", "Classifier_mnist") else "other replicas"
    if "ServeController" in cmdline:
        return "controller"
    if "haproxy" in cmdline.lower() or "ProxyActor" in cmdline:
        return "proxy"
    return "rest"


def cpu_by_process(server: Server) -> dict[int, tuple[str, float]]:
    out = {}
    for p in server._tree():
        try:
            t = p.cpu_times()
            out[p.pid] = (" ".join(p.cmdline()), t.user + t.system)
        except psutil.Error:
            pass
    return out


def spent(before: dict, after: dict, app: str, seconds: float, idle: dict) -> dict[str, float]:
    """CPU seconds per group between two readings, less what each process spends idle."""
    out: dict[str, float] = defaultdict(float)
    for pid, (cmd, cpu) in after.items():
        g = group(cmd, app)
        if g is not None:
            used = cpu - before[pid][1] if pid in before else cpu  # new: all of it
            out[g] += max(0.0, used - idle.get(pid, 0.0) * seconds)
    return out


def idle_rates(server: Server, seconds: float = IDLE_S) -> dict[int, float]:
    """Every process's CPU seconds per second with no load: timers, health checks, metrics."""
    before = cpu_by_process(server)
    time.sleep(seconds)
    after = cpu_by_process(server)
    return {pid: (cpu - before[pid][1]) / seconds for pid, (_, cpu) in after.items()
            if pid in before}


def burst(server: Server, step: int, case: tuple, c: int, seconds: float, idle: dict) -> dict:
    path, *request = case
    url = f"{server.url}/s{step}{path}"
    send = wrk_args(*request)
    wrk.run(url, concurrency=c, seconds=1, **send)  # warm-up at this level
    before, t0 = cpu_by_process(server), time.monotonic()
    row = wrk.run(url, concurrency=c, seconds=seconds, **send).row()
    used = spent(before, cpu_by_process(server), f"s{step}", time.monotonic() - t0, idle)
    answered = max(1, row["requests"] - row["errors"])
    return {**row, "step": step, "cpu_ms": {g: round(1000 * used.get(g, 0.0) / answered, 3)
                                            for g in GROUPS}}


def measure_pair(step: int, rounds: int, seconds: float, env: dict) -> list[dict]:
    single = bodies()["single"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server([SERVE, "run", str(pair_config(step, Path(tmp)))],
                        SERVE_URL, (f"/s{step}/mnist", single[1]), env)
        try:
            server._wait(f"/s{step - 1}/mnist", single[1], timeout=600)
            time.sleep(5)  # the other step's replicas settle too
            idle = idle_rates(server)
            for r in range(rounds):
                for c in (1, 32):
                    for s in (step - 1, step):  # alternated: each round meets both
                        rows.append({"round": r, **burst(server, s, single, c, seconds, idle)})
                        print(json.dumps(rows[-1]), flush=True)
        finally:
            server.stop()
    return rows


def summary(step: int, rows: list[dict]) -> dict:
    """Medians over the rounds of step's figures and of its differences from step-1."""
    def med(s: int, c: int, key: str, sub: str | None = None) -> float:
        vals = [r[key][sub] if sub else r[key] for r in rows if r["step"] == s and r["c"] == c]
        return statistics.median(vals)

    out = {"step": step}
    for c in (1, 32):
        out[f"p50_c{c}"] = med(step, c, "p50_ms")
        out[f"req_s_c{c}"] = med(step, c, "req_s")
        out[f"cpu_ms_c{c}"] = {g: med(step, c, "cpu_ms", g) for g in GROUPS}
        out[f"delta_cpu_ms_c{c}"] = {g: round(out[f"cpu_ms_c{c}"][g] - med(step - 1, c, "cpu_ms", g), 3)
                                     for g in GROUPS}
    out["delta_p50_c1"] = round(out["p50_c1"] - med(step - 1, 1, "p50_ms"), 2)
    out["ratio_req_s_c32"] = round(out["req_s_c32"] / med(step - 1, 32, "req_s"), 3)
    return out


def markdown(summaries: list[dict]) -> str:
    head = ("| step | p50 c=1 (ms) | Δ p50 | req/s c=32 | × previous | CPU ms/req c=1: ingress, "
            "leaf, other, controller, proxy, rest | Δ CPU c=1 (total) | Δ CPU c=32 (total) |")
    lines = [head, "|" + "---|" * 8]
    for s in summaries:
        cpu = ", ".join(f"{s['cpu_ms_c1'][g]:.2f}" for g in GROUPS)
        lines.append(f"| {s['step']} | {s['p50_c1']:.2f} | {s['delta_p50_c1']:+.2f} | "
                     f"{s['req_s_c32']:.0f} | {s['ratio_req_s_c32']:.2f} | {cpu} | "
                     f"{sum(s['delta_cpu_ms_c1'].values()):+.2f} | "
                     f"{sum(s['delta_cpu_ms_c32'].values()):+.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0, help="per burst")
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--last", type=int, default=SERVICE)
    p.add_argument("--name", default="staircase")
    args = p.parse_args()
    if missing := wrk.available():
        raise SystemExit(missing)
    env = {**serve_config.serve_env(), "PYTHONPATH": str(ROOT)}
    rows, summaries = [], []
    for step in range(args.first, args.last + 1):
        pair = measure_pair(step, args.rounds, args.seconds, env)
        rows += [{**r, "pair": step} for r in pair]
        summaries.append(summary(step, pair))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"rows": rows, "summary": summaries},
                                                          indent=1))
    (RESULTS / f"{args.name}.md").write_text(markdown(summaries))
    print(markdown(summaries))


if __name__ == "__main__":
    main()
