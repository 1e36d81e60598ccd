"""`make bench`: the service beside the compute ceiling, the seed's architecture and Ray's
floor, all in one run.

Every HTTP figure comes from `wrk` (benchmarks/wrk.py), a C load generator that costs the
server's cores little; the ceiling is measured in-process; cold start is timed by polling with
`requests` until the first 200. Writes benchmarks/results/serve.md (table and targets), .json
and .png. Absolute numbers on a shared 2-core machine are noise; the ratios measured side by
side in one run are the result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import side_by_side, wrk
from benchmarks.bodies import bodies, wrk_args
from benchmarks.report import RESULTS, write
from benchmarks.servers import (
    SEED_CMD,
    SEED_URL,
    SERVE,
    SERVE_URL,
    Server,
    floor_config,
    memory_by_process,
)
from training.model import load_checkpoint, probabilities
from vision_core import onnx_model, serve_config
from vision_core.paths import ROOT, resolve
from vision_core.registry import MODELS

CHECKPOINT = resolve(MODELS["mnist"].checkpoint)  # the model every load case sends to


def ceiling(threads: int, runtime: str = "served", seconds: float = 5.0,
            batch: int = 64) -> float:
    """The classifier's forward pass alone, in-process, batches of 64, on `threads` threads:
    images/s. `served` is what a replica runs (vision_core.onnx_model: the ONNX export of the
    committed checkpoint); `torch` is the seed's runtime. All the cores (2 here) is the
    machine's limit; one thread is one replica's."""
    pixels = np.random.default_rng(0).integers(0, 256, (batch, 28, 28), np.uint8)
    if runtime == "served":
        model, _ = onnx_model.load(CHECKPOINT, threads)
        forward = model.scores
    else:
        torch.set_num_threads(threads)
        net, meta = load_checkpoint(CHECKPOINT)
        forward = lambda px: probabilities(net, meta, px)  # noqa: E731
    forward(pixels)  # warm-up: first-call allocations
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        forward(pixels)
        done += batch
    return done / (time.perf_counter() - start)


# Which bodies each server gets, at which concurrencies (c = wrk connections). The seed takes one
# image per request; the floor answers a constant whatever it is sent.
SEED_RUNS = {"single": (1, 32), "canvas": (1, 32)}
FLOOR_RUNS = {"single": (1, 32)}
SERVE_RUNS = {"single": (1, 32), "canvas": (1, 32), "batch64": (1, 4), "oip64": (4,),
              "oipbin64": (4,)}


def measure(server: Server, name: str, path: str, body: bytes, images: int,
            headers: dict[str, str], levels, seconds):
    rows = []
    send = wrk_args(body, images, headers)
    for c in levels:
        wrk.run(server.url + path, concurrency=c, seconds=2, **send)  # warm-up at this level
        cpu0 = server.cpu_seconds()
        result = wrk.run(server.url + path, concurrency=c, seconds=seconds, **send)
        cpu = server.cpu_seconds() - cpu0
        done = result.requests * images
        rows.append({"run": name, **result.row(),
                     "cpu_s_per_1k_img": round(1000 * cpu / done, 2) if done else None})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def run_server(label: str, cmd: list[str], url: str, cases, runs: dict, seconds, info,
               env: dict | None = None) -> list[dict]:
    """Start one server, measure `runs` on it from the same idle state, record its cold start
    and memory, stop it."""
    server = Server(cmd, url, ("/mnist", cases["single"][1]), env)
    try:
        info[f"{label}_cold_start_s"] = round(server.cold_start_s, 1)
        idle = server.replicas()
        rows = []
        for name, levels in runs.items():
            if idle:  # a Serve app: start each run at the replica count it started with
                server.settle(idle)
            rows += measure(server, f"{label} {name}", *cases[name], levels, seconds)
        memory = memory_by_process(server)
        info[f"{label}_pss_after_load_mb"] = sum(m["pss_mb"] for m in memory.values())
        info[f"{label}_peak_pss_mb"] = round(server.peak_pss / 2**20)
        info[f"{label}_memory_by_process"] = memory
        return rows
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=8.0, help="per load level")
    p.add_argument("--runs", default=",".join(SERVE_RUNS), help="service runs to measure")
    p.add_argument("--config", default="config/serve.yaml")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service")
    p.add_argument("--name", default="serve", help="results file stem")
    p.add_argument("--no-baselines", action="store_true",
                   help="the service alone: no ceiling, seed or floor (for lever comparisons)")
    p.add_argument("--rounds", type=int, default=5,
                   help="rounds of the side-by-side phase (benchmarks/side_by_side.py); 0: none")
    p.add_argument("--burst-seconds", type=float, default=4.0, help="per side-by-side burst")
    args = p.parse_args()
    if missing := wrk.available():
        sys.exit(f"make bench: {missing}")
    cases = bodies()
    rows, info = [], {"config": args.config, "env": args.env, "load": "wrk, 1 thread",
                      "seconds_per_level": args.seconds}
    # Every Serve app here runs under the process settings `make serve` gives it; PYTHONPATH
    # lets Ray's workers import benchmarks.floor_app.
    env = {**serve_config.serve_env(), **dict(e.split("=", 1) for e in args.env),
           "PYTHONPATH": str(ROOT)}
    if not args.no_baselines:
        cores = os.cpu_count() or 1
        info["ceiling_img_s_all_cores"] = round(ceiling(threads=cores), 1)
        info["ceiling_img_s_1_thread"] = round(ceiling(threads=1), 1)
        info["ceiling_img_s_all_cores_torch"] = round(ceiling(cores, runtime="torch"), 1)
        print(json.dumps(info), flush=True)
        rows += run_server("seed", SEED_CMD, SEED_URL, cases, SEED_RUNS, args.seconds, info)
        with tempfile.TemporaryDirectory() as tmp:
            rows += run_server("floor", [SERVE, "run", str(floor_config(Path(tmp)))],
                               SERVE_URL, cases, FLOOR_RUNS, args.seconds, info, env)
    runs = {name: SERVE_RUNS[name] for name in args.runs.split(",")}
    rows += run_server("serve", [SERVE, "run", args.config], SERVE_URL, cases,
                       runs, args.seconds, info, env)
    if not args.no_baselines and args.rounds:
        info["side_by_side"] = side_by_side.run(cases, args.rounds, args.burst_seconds, env)
    write(rows, info, RESULTS, args.name)


if __name__ == "__main__":
    main()
