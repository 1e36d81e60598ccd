"""`make rehearse`: play the KubeRay v1.7.0 operator's part against a real multi-node Ray cluster
started from kuberay/ray-service.yaml and kuberay/ray-job.train.yaml, each pod in a network
namespace of its own, and write a JSON report of what happened (kuberay/README.md, "Rehearsal").

Each pod runs as a container of the image its manifest names, built as `make image` builds it,
where podman can run containers; otherwise (and for an image not built here) it runs the
project's venv, and the run says so in one line.

Needs root and iproute2. Everything it creates is named rh<pid>... and removed when it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

import yaml

from kuberay.rehearsal import containers, image, pods, steps
from kuberay.rehearsal import operator as op
from kuberay.rehearsal.cluster import Operator
from vision_core.paths import ROOT

DEFAULT_REPORT = ROOT / "test-artifacts" / "rehearsal.json"
STATIC_DEVIATIONS = [
    "Pods are network namespaces on one host, each with its own address on a private bridge, "
    "private /tmp and /dev/shm, dropped capabilities and no-new-privileges.",
    "Services: no kube-proxy; the serve Service is emulated (ready pods labelled "
    "ray.io/serve=true, readiness probes every 5 s, a deleted pod leaves at once); the operator "
    "and the load run on the host.",
    "Claims: each PersistentVolumeClaim is one shared folder on the host.",
    "The autoscaler sidecar and liveness probes are not run; worker groups stay at `replicas`.",
    "Secret vision-ai-api-key is absent (it is optional): the inference routes are open.",
    "The RayJob's cluster is deleted as soon as the job ends (not ttlSecondsAfterFinished later).",
]
IN_CONTAINERS = (
    "Pods with an image run it as a container (podman, runc) joined to the pod's namespace, with "
    "the manifest's user, fsGroup, dropped capabilities, no-new-privileges, CPU and memory "
    "limits (cgroups), /dev/shm, claims at their mountPaths and podman's default seccomp "
    "profile; the container's /tmp is a host folder (its logs outlive it); readiness probes run "
    "in the container, also the head's (an httpGet from the kubelet on a cluster).")


def manifest(name: str, kind: str) -> dict:
    (doc,) = [d for d in yaml.safe_load_all((ROOT / "kuberay" / name).read_text())
              if d and d["kind"] == kind]
    return doc


def images(doc) -> set[str]:
    """Every container image a manifest names."""
    if isinstance(doc, list):
        return set().union(*map(images, doc)) if doc else set()
    if not isinstance(doc, dict):
        return set()
    named = {c["image"] for c in doc.get("containers", []) if "image" in c}
    return named.union(*map(images, doc.values()))


def rehearse(report: dict, use_images: bool = True) -> None:
    service, job = manifest("ray-service.yaml", "RayService"), manifest("ray-job.train.yaml",
                                                                          "RayJob")
    deviations = report["deviations"]
    deviations += STATIC_DEVIATIONS
    wanted = images([service, job])
    engine, ready, notes = image.prepare(wanted, use_images)
    for line in notes:
        print(f"rehearse: {line}", flush=True)
    deviations += notes + ([IN_CONTAINERS] if ready else [])
    report["runtime"] = {"engine": engine.name if engine else None,
                         "images": {tag: "container" if tag in ready else "venv"
                                    for tag in sorted(wanted)}}
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if 0 <= hard < op.OPEN_FILES:
        deviations.append(f"`ulimit -n {op.OPEN_FILES}` in the pods' command fails: this "
                          f"machine's hard limit is {hard} open files.")
    removed = pods.sweep() + (containers.sweep(engine) if engine else [])
    if removed:
        report["removed_from_earlier_runs"] = removed
    with pods.Network() as net:
        report["network"] = {"subnet": str(net.subnet), "bridge": net.bridge}
        operator = Operator(net, deviations, engine, frozenset(ready))
        report["steps"] = results = {}
        try:
            results.update(steps.service(operator, service))
            results["6_ray_job"] = steps.ray_job(operator, job)
        except BaseException:
            report["logs"] = {p.plan.name: p.tail() for p in net.pods}
            raise
        finally:
            report["pods"] = {p.plan.name: {
                "ip": p.ip, "command": p.plan.command,
                "runs": p.plan.image if isinstance(p, containers.ContainerPod) else "venv"}
                for p in net.pods}


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def checks(steps: dict) -> dict[str, bool]:
    """The rehearsal's goals, each true or false (the report says by how much)."""
    served, update = steps["3_traffic"], steps["4_in_place_update"]
    job = steps["6_ray_job"]
    return {
        "dashboard_refuses_requests_without_the_token":
            set(steps["2_serve_config"]["status_without_token"].values()) == {401},
        "contract_batch_and_oip_answer_correctly":
            served["seed_contract"]["class_id"] == served["seed_contract"]["expected"]
            and served["batch"]["class_ids"] == served["batch"]["expected"]
            and served["oip"]["class_id"] == served["oip"]["expected"],
        "no_replica_on_the_head": served["replicas_on_head"] == 0,
        "in_place_update_fails_no_request_and_keeps_the_replicas":
            update["failed"] == 0 and update["replicas_replaced"] == 0,
        "service_recovers_after_losing_its_worker":
            steps["5_worker_killed"]["seconds_to_recover"] is not None,
        "ray_job_succeeds_and_leaves_its_checkpoint":
            job["status"] == "SUCCEEDED" and job["checkpoint"] is not None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    parser.add_argument("--pods", choices=("image", "venv"), default="image",
                        help="run pods as containers of the images (where podman can), or all "
                             "from the project's venv")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("the rehearsal needs root (network namespaces); nothing was started")
    # SIGTERM (e.g. a test's timeout) unwinds like Ctrl-C, so every `finally` cleans up.
    signal.signal(signal.SIGTERM, _interrupt)
    address_file = Path("/tmp/ray/ray_current_cluster")
    before = address_file.read_text() if address_file.exists() else None
    report: dict = {"ok": False, "deviations": []}
    t0 = time.monotonic()
    try:
        rehearse(report, use_images=args.pods == "image")
        report["checks"] = checks(report["steps"])
        report["ok"] = all(report["checks"].values())
    except BaseException as err:  # noqa: BLE001 - reported, then re-raised below
        report["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        report["seconds_total"] = round(time.monotonic() - t0, 1)
        after = address_file.read_text() if address_file.exists() else None
        report["left_behind"] = {
            "namespaces": [n for n in pods.ip("netns", "list").split() if
                           n.startswith(f"rh{os.getpid()}-")],
            "folders": [str(p) for p in Path("/tmp").glob(f"rh-{os.getpid()}")],
            "containers": containers.left(f"rh{os.getpid()}-"),
            "host_ray_address_file_changed": before != after,
        }
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps({k: report.get(k) for k in ("ok", "error", "seconds_total", "checks")},
                         indent=2))
        print(f"report: {args.report}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
