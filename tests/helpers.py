"""Test-only helpers shared by the test files: the golden images, encoded images and base64 text,
the steady background traffic that the behaviour tests keep up while they break, scale or reload
the app, deploying Serve configs, and waiting; the docs' curl examples, and a local start of the
service the way a user does it (`make serve`).

Fixtures live in the conftest.py files; these are plain functions and classes, imported by name.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import inspect
import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import psutil
import requests
import yaml
from PIL import Image

from vision_core.paths import ROOT
from vision_core.serve_config import for_host, load

GOLDEN = ROOT / "tests" / "golden"
BIN = ROOT / ".venv" / "bin"
TEST_KEY_ENV, TEST_KEY = "VISION_TEST_API_KEY", "k3y-for-tests-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_config_on(port: int) -> dict:
    """config/serve.yaml as deployed by `serve run`, moved to a free port for the tests, with
    its feedback store in a folder of the test session's own (not the project's var/)."""
    # A shorter end-to-end timeout keeps the 408 test quick; nothing else comes near it.
    config = for_host(load(), "127.0.0.1", port=port, request_timeout_s=10)
    folder = Path(tempfile.mkdtemp(prefix="vision-feedback-"))
    config["applications"][0]["args"]["feedback"]["sqlite_path"] = str(folder / "vision.sqlite3")
    return config


def feedback_db(config: dict, app: str = "vision") -> str:
    """The SQLite file an app of `config` (or an ExtraApp of it, by name) keeps feedback in."""
    path = Path(config["applications"][0]["args"]["feedback"]["sqlite_path"])
    return str(path if app == "vision" else path.with_name(f"{app}.sqlite3"))


def wait_until(predicate, timeout: float, interval: float = 0.5, what: str = "condition",
               state: Callable[[], object] | None = None):
    """predicate()'s first truthy value, polled until `timeout`. On timeout the error names
    `what` was awaited and, given `state`, what it was instead, so a failure says why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    seen = f"; last seen: {state()!r}" if state else ""
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}{seen}")


def answers_200(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def golden(dataset: str) -> list[tuple[Path, int]]:
    """Committed example images `<dataset>_<kind>_<i>_label<k>.<ext>` with their true class."""
    found = sorted(GOLDEN.glob(f"{dataset}_*"))
    return [(p, int(p.stem.rsplit("label", 1)[1])) for p in found]


def alive_replicas(app: str, deployment: str = "") -> dict[str, int]:
    """Alive Serve replica actors of an app (optionally one deployment): name -> pid.

    Read from the GCS directly: the state API would need the dashboard, which tests skip.
    """
    import ray._private.state as state

    prefix = f"ServeReplica:{app}:{deployment}"
    matches = (lambda name: name == prefix) if deployment else \
        (lambda name: name.startswith(prefix))
    return {a["Name"]: a["Pid"] for a in state.actors(actor_state_name="ALIVE").values()
            if matches(a["ActorClassName"])}
def deploy(config: dict, timeout: float = 180) -> None:
    """Deploy a Serve config dict exactly as `serve run config.yaml` does, and wait for it."""
    from ray import serve
    from ray.serve._private.api import serve_start
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    # controller_options carry Serve's process settings (throughput mode, HAProxy), as with
    # `serve run`; they apply when the session's first deploy starts the controller.
    client = serve_start(http_options=schema.http_options.model_dump(),
                         proxy_location=schema.proxy_location,
                         controller_options=schema.controller_options)
    client.deploy_apps(schema, _blocking=False)

    def running():
        status = serve.status().applications
        apps = [status.get(a.name) for a in schema.applications]
        failed = [a for a in apps if a and a.status in ("DEPLOY_FAILED", "UNHEALTHY")]
        if failed:
            raise RuntimeError(f"deploy failed: {failed[0].message}")
        return all(a and a.status == "RUNNING" for a in apps)

    wait_until(running, timeout, what="the Serve application to run")


class ExtraApp:
    """A second copy of the app at /<name>, with per-deployment overrides.

    Serve configs are declarative, so every deploy lists the base app too (unchanged, so Serve
    leaves it running).
    """

    def __init__(self, base: dict, name: str, deployments: dict[str, dict],
                 args: dict | None = None):
        self.base, self.name, self.args = base, name, args or {}
        self.url = f"http://127.0.0.1:{base['http_options']['port']}/{name}"
        self.update(deployments)

    def update(self, deployments: dict[str, dict]) -> None:
        app = copy.deepcopy(self.base["applications"][0])
        app.update(name=self.name, route_prefix=f"/{self.name}")
        for key, value in self.args.items():  # a dict setting merges into the file's
            merged = isinstance(value, dict) and isinstance(app["args"].get(key), dict)
            app["args"][key] = {**app["args"][key], **value} if merged else value
        # A store of its own: two copies of the app must not write one SQLite file.
        app["args"]["feedback"]["sqlite_path"] = feedback_db(self.base, self.name)
        for dep in app["deployments"]:
            for key, value in deployments.get(dep["name"], {}).items():
                merged = {**dep.get(key), **value} if isinstance(value, dict) else value
                dep[key] = merged
        config = copy.deepcopy(self.base)
        config["applications"].append(app)
        deploy(config)

    def replicas(self, deployment: str) -> int:
        from ray import serve

        status = serve.status().applications[self.name].deployments[deployment]
        return status.replica_states.get("RUNNING", 0)

    def close(self) -> None:
        deploy(self.base)


@contextlib.contextmanager
def extra_app(base: dict, name: str, deployments: dict[str, dict], args: dict | None = None):
    app = ExtraApp(base, name, deployments, args)
    try:
        yield app
    finally:
        app.close()


T = TypeVar("T")


def b64(data: bytes | Path) -> str:
    """Base64 text of some bytes, or of a file's bytes, as the JSON API takes an image."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    return base64.b64encode(raw).decode()


def from_b64(text: str) -> Image.Image:
    """The image in base64 text, as the service returns the 28 x 28 image it saw."""
    return Image.open(io.BytesIO(base64.b64decode(text)))


def encode(image: np.ndarray | Image.Image, fmt: str = "PNG", **options) -> bytes:
    """An array (uint8, grey / RGB / RGBA by its shape) or a PIL image, encoded as `fmt`."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def digit_one(side: int = 28) -> np.ndarray:
    """A white vertical bar on black: a crude '1' in dataset form."""
    img = np.zeros((side, side), np.uint8)
    img[side // 5: side - side // 5, side // 2 - side // 14: side // 2 + side // 14 + 1] = 255
    return img


def png(array: np.ndarray) -> bytes:
    return encode(array, "PNG")


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid PNG whose header claims width x height: a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))


class Traffic(Generic[T]):
    """`send()` called in a loop from `threads` background threads for as long as the `with`
    block runs; every call's return value lands in `results` (list.append is thread-safe).

    An exception in `send` ends its thread (and is printed by threading's excepthook), so a
    `send` that must survive errors catches them itself.
    """

    def __init__(self, send: Callable[[], T], threads: int = 1):
        self.results: list[T] = []
        self._send, self._stop = send, threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.results.append(self._send())

    def __enter__(self) -> Traffic[T]:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def resaved_mnist(path: Path, note: str) -> str:
    """The served digit model saved again with a note, and exported: the same weights in a new
    file, so a new version (what a hot reload swaps in). Returns the new file's sha256."""
    from training.export import export
    from training.model import load_checkpoint, save_checkpoint
    from vision_core.paths import resolve
    from vision_core.registry import MODELS

    model, meta = load_checkpoint(resolve(MODELS["mnist"].checkpoint))
    sha = save_checkpoint(path, model, meta["model_args"], "mnist",
                          test_accuracy=meta["test_accuracy"], note=note)
    export(path)  # what a replica serves: the checkpoint's current ONNX export
    return sha


def candidate_checkpoint(folder: Path, kind: str) -> str:
    """A candidate version of the served digit model, exported, for rollout tests:
    - "good": the same weights and detector in a new file (a new version that is no worse);
    - "random": fresh random weights, claiming the served model's test accuracy;
    - "permuted": the served weights with the output classes rotated, as if trained on labels
      shifted by one (every answer is wrong, confidently);
    - "overeager": the served weights with the detector's threshold at the median score of
      in-domain images, so it declines about half of what users send. Its accuracy is the served
      model's: it passes the gate, and only live traffic shows it is worse.
    """
    import torch

    from training.export import export
    from training.model import Net, load_checkpoint, save_checkpoint
    from vision_core.decision import ood_score
    from vision_core.paths import resolve
    from vision_core.registry import MODELS

    model, meta = load_checkpoint(resolve(MODELS["mnist"].checkpoint))
    keep = {k: meta[k] for k in ("test_accuracy", "ood")}
    if kind == "random":
        torch.manual_seed(0)
        model = Net(**meta["model_args"])
    elif kind == "permuted":
        last = model.head[-1]
        with torch.no_grad():
            last.weight.copy_(last.weight.roll(1, dims=0))
            last.bias.copy_(last.bias.roll(1, dims=0))
    elif kind == "overeager":
        from training.model import features_and_logits

        gate = np.load(resolve(MODELS["mnist"].gate_set))
        scores = ood_score(meta["ood"], features_and_logits(model, meta, gate["pixels"])[0].numpy())
        keep["ood"] = {**meta["ood"], "threshold": float(np.median(scores))}
    path = folder / f"mnist_{kind}.pt"
    save_checkpoint(path, model, meta["model_args"], "mnist", note=f"{kind} candidate", **keep)
    export(path)
    return str(path)


# --- Monitoring config (config/monitoring/) ---

MONITORING = ROOT / "config" / "monitoring"
RULES = MONITORING / "rules" / "vision.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "vision-ai.json"
EXPORTED = ROOT / "tests" / "config" / "exported_metrics.yml"
METRIC = re.compile(r"\b(?:ray|haproxy)_[a-z0-9_]+\b")


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def exported() -> dict[str, list[str]]:
    return yaml.safe_load(EXPORTED.read_text())


def env_file() -> dict[str, str]:
    """config/monitoring/monitoring.env, with ${VAR} expanded as the shell and make would."""
    values: dict[str, str] = {}
    for line in (MONITORING / "monitoring.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], value)
    return values


def haproxy_metrics_port_default() -> int:
    """Ray's default HAProxy metrics port. Ray's constant follows RAY_SERVE_HAPROXY_METRICS_PORT,
    which the test session moves aside (tests/conftest.py), so the default is read from its source."""
    from ray.serve._private import constants

    found = re.search(r'"RAY_SERVE_HAPROXY_METRICS_PORT", "(\d+)"', inspect.getsource(constants))
    assert found, "Ray no longer names its HAProxy metrics port's default this way"
    return int(found.group(1))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


# --- Kubernetes manifests (kuberay/) ---

KUBERAY = ROOT / "kuberay"
FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CRDS_MISSING = ("KubeRay CRD schemas not found: set KUBERAY_CRDS to a folder holding the v1.7.0 "
                "CRDs (ray-operator/config/crd/bases in ray-project/kuberay at v1.7.0)")
CRD_FILES = {
    "RayService": "ray.io_rayservices.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayCluster": "ray.io_rayclusters.yaml",
}


def load_docs(path: Path) -> list[dict]:
    """Every non-empty document of a multi-document YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def only(manifests: dict[str, list[dict]], name: str, kind: str) -> dict:
    docs = [d for d in manifests[name] if d["kind"] == kind]
    assert len(docs) == 1, f"kuberay/{name} should hold exactly one {kind}"
    return docs[0]


def network_policy(manifests: dict[str, list[dict]], name: str) -> dict:
    """The NetworkPolicy called `name` in kuberay/network-policy.yaml."""
    (policy,) = [p for p in manifests["network-policy.yaml"] if p["metadata"]["name"] == name]
    return policy


def serve_config_v2(ray_service: dict) -> dict:
    return yaml.safe_load(ray_service["spec"]["serveConfigV2"])


def cluster(ray_service: dict) -> dict:
    return ray_service["spec"]["rayClusterConfig"]


def head_container(ray_service: dict) -> dict:
    return cluster(ray_service)["headGroupSpec"]["template"]["spec"]["containers"][0]


def ray_containers(ray_service: dict) -> list[dict]:
    groups = [cluster(ray_service)["headGroupSpec"], *cluster(ray_service)["workerGroupSpecs"]]
    return [g["template"]["spec"]["containers"][0] for g in groups]


# ---- The docs' examples of the local service: a curl command and the answer shown under it.

SHOWN_URL = "http://127.0.0.1:8000"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.M | re.S)


def curl_examples(doc: Path) -> list[tuple[str, str]]:
    """(bash command, the JSON shown as its answer) for each curl example of the local service."""
    text, examples = doc.read_text(), []
    blocks = list(BLOCK.finditer(text))
    for i, block in enumerate(blocks):
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        lang, body = block.group(1), block.group(2)
        if SHOWN_URL not in body or "curl" not in body:
            continue
        if lang == "bash" and following is not None and following.group(1) == "json" \
                and not text[block.end():following.start()].strip():
            examples.append((body, following.group(2)))
        elif lang == "console":  # `$ command` lines, each followed by its output
            for part in re.split(r"^\$ ", body, flags=re.M)[1:]:
                command, _, output = part.partition("\n")
                if command.startswith("curl") and output.strip():
                    examples.append((command, output))
    return examples


def readme_curl() -> str:
    """The README's first curl command (its "Try it" section): the seed's contract."""
    return curl_examples(ROOT / "README.md")[0][0]


def run_curl(command: str, url: str) -> bytes:
    """A docs curl command sent to `url` instead of the one shown; the answer's bytes."""
    done = subprocess.run(["bash", "-c", command.replace(SHOWN_URL, url)], cwd=ROOT,
                          capture_output=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{command}: exit code {done.returncode}: {done.stderr[-500:]!r}")
    return done.stdout


# ---- A local start of the service the way a user does it (`make serve`), in its own session.

def clean_env(**extra: str) -> dict[str, str]:
    """A new terminal's environment: nothing of the test session's Ray."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_", "VISION_")) and k != "PYTHONPATH"}
    return {**env, "PATH": f"{BIN}:{env.get('PATH', '')}", **extra}


def in_session(sid: int) -> list[psutil.Process]:
    """Every process of a session. Ray puts HAProxy in a process group of its own, and it
    outlives a killed parent, so stopping a process group is not enough."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getsid(proc.pid) == sid:
                found.append(proc)
    return found


@contextlib.contextmanager
def started(cmd: list[str], log: Path):
    """Run `cmd` in a session of its own and stop exactly that session afterwards
    (Ctrl-C first, as a user would; then whatever of the session is left)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=clean_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        left = in_session(proc.pid)
        for child in left:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(left, timeout=30)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


class PostgresServer:
    """A real PostgreSQL server from Debian's package, in a folder of its own, on loopback and a
    free port; `stop()` ends it (by its own pg_ctl) and removes the folder. As root, it runs as
    the package's `postgres` user: initdb refuses to run as root."""

    def __init__(self, folder: Path):
        import glob
        import os
        import pwd
        import shutil

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise FileNotFoundError("PostgreSQL not found: apt-get install postgresql "
                                    "(.ci/run does)")
        self.bin = Path(found[-1]).parent
        self.folder, self.port = folder, free_port()
        self._as = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.chown(folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        data = folder / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._run("pg_ctl", "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
                  f"-p {self.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=on",
                  "start")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as, str(self.bin / tool), *args], check=True,
                       capture_output=True, timeout=120)

    def stop(self) -> None:
        import shutil

        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
