"""The `serve` image, run the way a user runs it (`docker run -p ... --shm-size ...`): it answers
as `make serve` does, byte for byte, on every protocol; it runs as uid 1000 only, cannot rewrite
its own code, config or models, carries the repository's models and no torch; and it stops
cleanly on `<engine> stop`. The last test stops the container, so it stays last.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from container.preflight import HAPROXY_MIN_OPEN_FILES
from kuberay.rehearsal.operator import quantity_value
from tests.helpers import golden, readme_curl, run_curl
from vision_core.paths import ROOT

# The first test also builds the stand-in base where it is not cached (minutes on 2 cores).
pytestmark = pytest.mark.timeout(1500)
APP = "/home/ray/app"
STOP_WITHIN_S = 45
# Every process, from /proc: pid, name and the four uids (real, effective, saved, filesystem).
PROCESSES = """
import json, os
out = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    except OSError:  # gone meanwhile
        continue
    out.append({"pid": int(pid), "name": status["Name"].strip(),
                "uids": sorted({int(u) for u in status["Uid"].split()})})
print(json.dumps(out))
"""
# Every file and folder of the app that this user could write, and what creating a file says.
WRITABLE = """
import json, os, sys
app = sys.argv[1]
data = os.path.join(app, "var")  # the one folder the service writes (the feedback store)


def walk(top):
    for d, dirs, files in os.walk(top):
        dirs[:] = [x for x in dirs if os.path.join(d, x) != data]
        yield d, dirs, files


writable = [os.path.join(d, n) for d, dirs, files in walk(app) for n in ["", *dirs, *files]
            if os.access(os.path.join(d, n), os.W_OK)]
try:
    open(os.path.join(app, "models", "new.pt"), "wb").close()
    created = "created"
except OSError as err:
    created = type(err).__name__
print(json.dumps({"writable": writable, "create_in_models": created,
                  "owners": sorted({os.stat(os.path.join(d, n)).st_uid
                                    for d, _, files in walk(app) for n in files}),
                  "data_writable": os.access(data, os.W_OK), "data": sorted(os.listdir(data))}))
"""
SHA256 = """
import hashlib, json, os, sys
folder = sys.argv[1]
files = sorted(os.path.relpath(os.path.join(d, n), folder)
               for d, _, names in os.walk(folder) for n in names)
print(json.dumps({n: hashlib.sha256(open(os.path.join(folder, n), "rb").read()).hexdigest()
                  for n in files}))
"""


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def post(url: str, **kwargs) -> requests.Response:
    http = requests.Session()
    http.trust_env = False
    return http.post(url, timeout=60, **kwargs)


def test_it_reports_healthy_through_its_own_healthcheck(container) -> None:
    assert container.engine.health(container.id) == "healthy"
    assert container.timings["seconds_to_healthy"] >= container.timings["seconds_to_first_200"]


def test_the_readme_curl_answers_byte_for_byte_as_make_serve_does(container, make_serve
                                                                   ) -> None:
    inside = run_curl(readme_curl(), container.url)
    assert inside == make_serve["readme_curl"]
    assert json.loads(inside)["class_id"] == 4  # tests/golden/mnist_photo_0_label4.jpg


def test_many_images_in_one_request(container) -> None:
    images = golden("mnist")
    answer = post(f"{container.url}/mnist", json={"base64": [b64(p) for p, _ in images]})
    assert answer.status_code == 200, answer.text[:300]
    assert [p["class_id"] for p in answer.json()["predictions"]] == [y for _, y in images]


def test_the_open_inference_protocol(container) -> None:
    path, label = golden("fmnist")[0]
    answer = post(f"{container.url}/v2/models/fmnist/infer", json={"inputs": [
        {"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(path)]}]})
    assert answer.status_code == 200, answer.text[:300]
    outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
    assert outputs["class_id"] == [label]


def test_classify_sends_each_image_to_its_model(container) -> None:
    (digit, _), (garment, _) = golden("mnist")[0], golden("fmnist")[0]
    answer = post(f"{container.url}/classify", json={"base64": [b64(digit), b64(garment)]})
    assert answer.status_code == 200, answer.text[:300]
    assert [p["model"] for p in answer.json()["predictions"]] == ["mnist", "fmnist"]


def test_a_20_mb_body_gets_the_413_json_answer(container) -> None:
    big = post(f"{container.url}/mnist", data=b"{" + b" " * (20 * 2**20) + b"}",
               headers={"Content-Type": "application/json"})
    assert big.status_code == 413, big.text[:300]
    assert big.json()["error"]["code"] == "body_too_large"


def test_a_corrupt_image_gets_a_422(container) -> None:
    path, _ = golden("mnist")[0]
    corrupt = path.read_bytes()[:200]  # a valid header, then nothing
    answer = post(f"{container.url}/mnist",
                  json={"base64": base64.b64encode(corrupt).decode()})
    assert answer.status_code == 422, answer.text[:300]


def test_every_process_runs_as_uid_1000(container) -> None:
    processes = json.loads(container.python(PROCESSES))
    names = {p["name"] for p in processes}
    assert {"raylet", "gcs_server", "haproxy"} <= names, names  # the whole service was seen
    assert {u for p in processes for u in p["uids"]} == {1000}, [
        p for p in processes if p["uids"] != [1000]]


def test_code_config_and_models_are_read_only_and_var_is_the_services(container) -> None:
    found = json.loads(container.python(WRITABLE, APP))
    assert found["writable"] == [] and found["create_in_models"] == "PermissionError", found
    assert found["owners"] == [0]
    # var/ alone is the service's: the feedback store was created there at start-up.
    assert found["data_writable"] and "feedback.sqlite3" in found["data"], found


def test_sudo_grants_nothing(container) -> None:
    done = container.exec("sudo", "-n", "true")
    assert done.returncode != 0 and "password is required" in done.stderr, done


def test_the_image_carries_no_torch(container) -> None:
    done = container.exec("python", "-c", "import torch")
    assert done.returncode != 0 and "No module named 'torch'" in done.stderr, done.stderr


def test_the_models_are_the_repositorys_and_run_on_onnx_runtime(container) -> None:
    inside = json.loads(container.python(SHA256, f"{APP}/models"))
    repo = {str(p.relative_to(ROOT / "models")): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((ROOT / "models").rglob("*")) if p.is_file()}
    assert inside == repo
    http = requests.Session()
    http.trust_env = False
    models = http.get(f"{container.url}/models", timeout=30).json()
    assert {m["name"]: m["runtime"] for m in models} == {"mnist": "onnxruntime",
                                                         "fmnist": "onnxruntime"}


def test_memory_after_load_fits_what_the_rayservice_gives_head_and_worker(container,
                                                                          figures) -> None:
    """One container holds what the RayService spreads over a head and a worker pod."""
    images = [b64(p) for p, _ in golden("mnist")]
    for i in range(200):  # bounded: a few seconds of load through every route's replicas
        assert post(f"{container.url}/mnist", json={"base64": images[i % len(images)]}).ok
        if i % 20 == 0:
            assert post(f"{container.url}/classify", json={"base64": images}).ok
    used = container.engine.memory_bytes(container.id)
    figures["container"]["memory_after_load_mb"] = round(used / 1e6)
    service = yaml.safe_load((ROOT / "kuberay" / "ray-service.yaml").read_text())
    spec = service["spec"]["rayClusterConfig"]
    pods = [spec["headGroupSpec"], spec["workerGroupSpecs"][0]]
    limits = [g["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
              for g in pods]
    assert 0 < used < sum(quantity_value(m) for m in limits), (used, limits)


def test_the_hosts_pip_settings_left_no_trace(container) -> None:
    """They reached the build as secrets: no pip config, PIP_ variable or secret file stays."""
    done = container.exec("bash", "-c", "pip config list; env | grep ^PIP_; "
                          "ls /run/secrets/pip_cert /run/secrets/pip_index_url 2>/dev/null")
    assert done.stdout.strip() == "", done.stdout


def test_make_image_prints_the_base_the_tag_and_the_size(serve_image) -> None:
    """The README's `make image`, on the layers the fixture built (so seconds, not minutes)."""
    done = subprocess.run(["make", "--no-print-directory", "image"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert [line for line in lines if line.startswith("base: ")], lines[:5]
    assert re.fullmatch(rf"{re.escape(serve_image)}  \d+ MB  \(built with \w+ in \d+ s\)",
                        lines[-1]), lines[-1]


def test_it_refuses_to_start_without_the_open_files_haproxy_needs(engine, serve_image) -> None:
    flags = list(engine.run_flags)
    for i, flag in enumerate(flags):  # podman: our nofile flag gives way to a too-low one
        if flag.startswith("nofile="):
            del flags[i - 1:i + 1]
            break
    done = engine("run", "--rm", *flags, "--ulimit", "nofile=1024:1024", serve_image,
                  check=False, timeout=120)
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert f"hard open-files limit of at least {HAPROXY_MIN_OPEN_FILES}" in out, out[-2000:]
    assert "ray start" not in out  # refused before Ray started


def test_stop_ends_it_cleanly_within_45_s(container, figures) -> None:
    t0 = time.monotonic()
    done = container.engine("stop", "-t", str(STOP_WITHIN_S + 15), container.id, check=False,
                            timeout=STOP_WITHIN_S + 60)
    seconds = round(time.monotonic() - t0, 1)
    figures["container"]["seconds_to_stop"] = seconds
    code = container.engine("inspect", "--format", "{{.State.ExitCode}}", container.id).stdout
    assert done.returncode == 0 and int(code) == 0, (done.stderr, code)
    assert seconds <= STOP_WITHIN_S
