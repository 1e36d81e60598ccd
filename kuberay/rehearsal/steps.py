"""The rehearsal's steps (kuberay/README.md, "Rehearsal"): the RayService's life (1-5), then the
RayJob (6). Each returns what it measured; a step that cannot go on raises."""

from __future__ import annotations

import base64
import copy
import json
import shlex
import subprocess
import time

import requests
import yaml

from kuberay.rehearsal import operator as op
from kuberay.rehearsal.cluster import DEADLINE_S, Operator, suffix, wait_ready
from kuberay.rehearsal.dashboard import SERVE_PATH, Dashboard
from kuberay.rehearsal.pods import Pod
from kuberay.rehearsal.traffic import Load, Service
from vision_core import onnx_model
from vision_core.paths import ROOT

GOLDEN = ROOT / "tests" / "golden"
STEADY_S = 10  # after recovering, the load must run this long without a failure


def golden(dataset: str, kind: str = "dataset") -> list[tuple[bytes, int]]:
    """Committed example images `<dataset>_<kind>_<i>_label<k>.png` with their true class."""
    return [(p.read_bytes(), int(p.stem.rsplit("label", 1)[1]))
            for p in sorted(GOLDEN.glob(f"{dataset}_{kind}_*"))]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def dashboard_port(doc: dict) -> int:
    """FetchHeadServiceURL(DashboardPortName): the head container's port named "dashboard"."""
    ports = op.container(doc, "headgroup").get("ports", [])
    return next((p["containerPort"] for p in ports if p["name"] == "dashboard"),
                op.DASHBOARD_PORT)


def serve_port(doc: dict) -> int:
    return yaml.safe_load(doc["spec"]["serveConfigV2"])["http_options"]["port"]


def start_cluster(operator: Operator, doc: dict) -> tuple[str, Pod, list[Pod], dict]:
    """Head and every worker group's `replicas` pods, as the RayCluster controller creates them."""
    cluster, t0 = operator.cluster(doc), time.monotonic()
    head = operator.start_head(doc, cluster)
    workers = [operator.start_worker(doc, g["groupName"], cluster)
               for g in op.cluster_spec(doc)["workerGroupSpecs"] for _ in range(g["replicas"])]
    head_s = wait_ready(head, DEADLINE_S["pod"])
    return cluster, head, workers, {
        "cluster": cluster, "head": {"ip": head.ip, "seconds_to_ready": head_s},
        "workers": [{"ip": w.ip, "group": w.plan.group} for w in workers],
        "seconds_to_head_ready": round(time.monotonic() - t0, 1)}


def deploy(dash: Dashboard, body: bytes) -> None:
    """UpdateDeployments, retried every 2 s while the dashboard is still starting (idempotent)."""
    deadline = time.monotonic() + DEADLINE_S["pod"]
    while True:
        try:
            return dash.put_config(body)
        except (requests.RequestException, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(op.SERVE_POLL_S)


def replicas(details: dict) -> dict[str, dict]:
    """replica_id -> {deployment, node_ip} for every replica of every application."""
    return {r["replica_id"]: {"deployment": name, "node_ip": r.get("node_ip")}
            for app in details["applications"].values()
            for name, dep in app["deployments"].items() for r in dep.get("replicas", [])}


def contract_checks(url: str) -> dict:
    """The seed's curl contract, a batch and an Open Inference Protocol request."""
    http = requests.Session()
    http.trust_env = False
    (image, label), *_ = golden("mnist")
    one = http.post(f"{url}/mnist", json={"base64": b64(image)}, timeout=60)
    batch_in = golden("mnist")
    batch = http.post(f"{url}/mnist", json={"base64": [b64(i) for i, _ in batch_in]}, timeout=60)
    fm_image, fm_label = golden("fmnist")[0]
    oip = http.post(f"{url}/v2/models/fmnist/infer", timeout=60, json={"inputs": [
        {"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(fm_image)]}]})
    oip_out = {o["name"]: o["data"] for o in oip.json().get("outputs", [])} if oip.ok else {}
    return {
        "seed_contract": {"status": one.status_code, "expected": label,
                          "class_id": one.json().get("class_id") if one.ok else one.text[:200]},
        "batch": {"status": batch.status_code, "expected": [y for _, y in batch_in],
                  "class_ids": [p["class_id"] for p in batch.json()["predictions"]]
                  if batch.ok else batch.text[:200]},
        "oip": {"status": oip.status_code, "expected": [fm_label],
                "class_id": oip_out.get("class_id", oip.text[:200])},
    }


def changed_knob(doc: dict) -> tuple[dict, str, object, object]:
    """serveConfigV2 with one numeric user_config knob changed (the first one found)."""
    config = copy.deepcopy(yaml.safe_load(doc["spec"]["serveConfigV2"]))
    for app in config["applications"]:
        for dep in app.get("deployments", []):
            for key, value in (dep.get("user_config") or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    new = value // 2 if isinstance(value, int) else value * 2
                    dep["user_config"][key] = new
                    return config, f"{app['name']}/{dep['name']}.user_config.{key}", value, new
    raise LookupError("serveConfigV2 has no numeric user_config knob to change")


def service(operator: Operator, doc: dict) -> dict:
    """Steps 1-5 on the RayService; its pods are deleted at the end, as `kubectl delete` would."""
    out = {}
    cluster, head, workers, out["1_pods"] = start_cluster(operator, doc)
    dash = Dashboard(f"http://{head.ip}:{dashboard_port(doc)}", operator.token)
    t = time.monotonic()
    deploy(dash, op.serve_config_json(doc))
    dash.wait_running(DEADLINE_S["serve"])
    out["2_serve_config"] = {
        "seconds_to_running": round(time.monotonic() - t, 1),
        "status_without_token": {p: dash.status_without_token(p) for p in (
            SERVE_PATH + "?api_type=declarative", "/api/jobs/")}}
    with Service(serve_port(doc)) as svc:
        for w in workers:
            svc.add(w)
        out["3_traffic"] = {"workers_ready_s": [wait_ready(w, DEADLINE_S["pod"]) for w in workers]}
        deadline = time.monotonic() + DEADLINE_S["pod"]
        while not svc.endpoints() and time.monotonic() < deadline:
            time.sleep(1)
        if not svc.endpoints():
            raise RuntimeError("no worker ever joined the serve Service")
        out["3_traffic"].update(contract_checks(svc.endpoints()[0]))
        placed = replicas(dash.details())
        out["3_traffic"]["replicas_by_node"] = {
            ip: sum(r["node_ip"] == ip for r in placed.values())
            for ip in sorted({r["node_ip"] for r in placed.values()})}
        out["3_traffic"]["replicas_on_head"] = sum(r["node_ip"] == head.ip for r in placed.values())
        (image, _), *_ = golden("mnist")
        body = {"base64": b64(image)}
        out["4_in_place_update"] = update_under_load(dash, doc, svc, body, placed)
        out["5_worker_killed"] = kill_worker(operator, doc, dash, svc, body, workers[0], cluster)
    for pod in [p for p in operator.net.pods if p.plan.labels.get("ray.io/cluster") == cluster]:
        pod.delete()
    return out


def update_under_load(dash: Dashboard, doc: dict, svc: Service, body: dict,
                      before: dict) -> dict:
    """Step 4: the operator sends a changed serveConfigV2; Serve reconfigures in place."""
    config, knob, old, new = changed_knob(doc)
    app_name, rest = knob.split("/", 1)
    dep_name, key = rest.split(".user_config.")

    def applied(details: dict) -> bool:
        dep = details["applications"][app_name]["deployments"][dep_name]
        return dep["deployment_config"].get("user_config", {}).get(key) == new

    with Load(svc, "/mnist", body) as load:
        time.sleep(3)
        t = time.monotonic()
        deploy(dash, json.dumps(config).encode())
        details = dash.wait_running(DEADLINE_S["serve"], done=applied)
        seconds = round(time.monotonic() - t, 1)
        time.sleep(5)
    after = replicas(details)
    return {"knob": knob, "from": old, "to": new, "seconds_to_running": seconds,
            **load.summary(since=t - 3),
            "replicas_replaced": len(set(before) - set(after))}


def kill_worker(operator: Operator, doc: dict, dash: Dashboard, svc: Service, body: dict,
                worker: Pod, cluster: str) -> dict:
    """Step 5: the worker pod dies (all its processes); the operator creates a new one."""
    with Load(svc, "/mnist", body) as load:
        time.sleep(3)
        t = time.monotonic()
        svc.remove(worker)
        worker.delete()
        new = operator.start_worker(doc, worker.plan.group, cluster)
        svc.add(new)
        deadline = t + DEADLINE_S["recover"]
        while time.monotonic() < deadline:
            back = load.recovered_after(t)
            if back is not None and time.monotonic() - (t + back) >= STEADY_S:
                break
            time.sleep(1)
    placed = replicas(dash.details())
    return {"old_worker_ip": worker.ip, "new_worker_ip": new.ip, **load.summary(since=t),
            "seconds_to_recover": load.recovered_after(t),
            "replicas_by_node": {ip: sum(r["node_ip"] == ip for r in placed.values())
                                 for ip in sorted({r["node_ip"] for r in placed.values()})}}


def pod_path(argv: list[str], mounts: dict[str, str]) -> list[str]:
    """The entrypoint's paths under a mountPath, moved to where the pods see that claim."""
    out = []
    for token in argv:
        for path, seen in mounts.items():
            if token == path or token.startswith(path.rstrip("/") + "/"):
                token = seen + token[len(path.rstrip("/")):]
        out.append(token)
    return out


def ray_job(operator: Operator, job: dict) -> dict:
    """Step 6: the RayJob's own cluster, its submitter (K8sJobMode), and the job's result."""
    cluster, head, workers, started = start_cluster(operator, job)
    for w in workers:  # K8sJobMode submits once the RayCluster is ready
        wait_ready(w, DEADLINE_S["pod"])
    argv = pod_path(shlex.split(job["spec"]["entrypoint"]), head.mounts()) + ["--smoke-test"]
    job_id = f"{job['metadata']['name']}-{suffix()}"
    plan = op.submitter_plan(job, f"{job['metadata']['name']}-{suffix()}", cluster,
                             operator.token, f"{op.head_service_fqdn(job)}:{dashboard_port(job)}",
                             job_id, shlex.join(argv))
    submitter = operator.pod(job, "submitter", cluster, plan=plan)
    t = time.monotonic()
    submitter.start()
    try:
        submitter.proc.wait(timeout=DEADLINE_S["job"])
    except subprocess.TimeoutExpired:
        submitter.kill()
    info = Dashboard(f"http://{head.ip}:{dashboard_port(job)}", operator.token).job(job_id)
    output = argv[argv.index("--output") + 1]
    on_host = head.on_host(output)
    result = {**started, "job_id": job_id, "entrypoint": shlex.join(argv),
              "status": info.get("status"), "message": info.get("message"),
              "seconds": round(time.monotonic() - t, 1), "submitter_exit": submitter.proc.poll(),
              "checkpoint": None}
    # training.train exports it: its metadata is readable without torch
    if on_host is not None and on_host.exists():
        _, meta = onnx_model.load(on_host)
        result["checkpoint"] = {"path": output, "dataset": meta["dataset"],
                                "smoke_test": meta["train_config"]["smoke_test"]}
    if info.get("status") != "SUCCEEDED":
        result["submitter_log"] = submitter.tail(40)
    for pod in [p for p in operator.net.pods if p.plan.labels.get("ray.io/cluster") == cluster]:
        pod.delete()
    submitter.delete()
    return result
