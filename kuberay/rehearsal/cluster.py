"""The operator's actions on pods: create them from a manifest's groups as KubeRay does (head,
then workers behind the wait-gcs-ready init container) and wait for their readiness probes."""

from __future__ import annotations

import base64
import os
import random
import shlex
import string
import subprocess
import time

from container.engine import Engine
from kuberay.rehearsal import operator as op
from kuberay.rehearsal import pods
from kuberay.rehearsal.containers import ContainerPod
from kuberay.rehearsal.image import base_env
from vision_core.paths import ROOT

IMPORTS = "import ray, serve_app, training"  # what a pod's processes import from the "image"
HEAD_BY_IP = (
    "The head Service's name is replaced by the head pod's address in the workers' --address, "
    "RAY_ADDRESS and FQ_RAY_IP and in the submitter's dashboard address: there is no cluster "
    "DNS, and Ray's gRPC client does not resolve the name from the pods' /etc/hosts.")
DEADLINE_S = {"pod": 240, "serve": 480, "recover": 300, "job": 600}


def suffix() -> str:
    """rand.String(5) of GenerateRayClusterName / GenerateRayJobId."""
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=5))


class Operator:
    """Creates pods the way KubeRay does, and tracks them for the report and the clean-up. A pod
    whose image is in `images` runs as a container of it; any other runs the project's venv."""

    def __init__(self, net: pods.Network, deviations: list[str], engine: Engine | None = None,
                 images: frozenset[str] = frozenset()) -> None:
        self.net, self.deviations = net, deviations
        self.engine, self.images = engine, images
        self.token = base64.b64encode(os.urandom(32)).decode()  # generateRandomToken(32)
        self.env, self.venv_notes = base_env()
        self.deviations.append(HEAD_BY_IP)
        self.as_root = None  # decided on the first venv pod

    def cluster(self, doc: dict) -> str:
        """A RayCluster for `doc`: its head Service name resolves to the head pod from now on."""
        return f"{doc['metadata']['name']}-{suffix()}"

    def pod(self, doc: dict, group: str, cluster: str, plan: op.PodPlan | None = None
            ) -> pods.Pod:
        plan = plan or op.pod_plan(doc, group, f"{cluster}-{group}-{suffix()}", cluster,
                                   self.token, secrets={})
        for name, address in self.net.names.items():  # see HEAD_BY_IP
            plan.command = plan.command.replace(name, address)
            plan.env = {k: v.replace(name, address) for k, v in plan.env.items()}
        if self.engine is not None and plan.image in self.images:
            return self.net.pod(plan, ContainerPod, engine=self.engine)
        if self.venv_notes:  # once, for the first pod that runs the venv
            self.deviations += self.venv_notes
            self.venv_notes = []
        pod = self.net.pod(plan, base_env=self.env, cwd=ROOT)
        if self.as_root is None:  # the first pod tells whether the manifest's user can run it
            check = pod.run(f"python -c {shlex.quote(IMPORTS)}", timeout=180)
            self.as_root = check.returncode != 0
            if self.as_root:
                self.deviations.append(
                    f"Pods run as root, not as runAsUser {plan.security.get('runAsUser')}: that "
                    f"user cannot run the venv here ({check.stderr.strip()[-200:]}).")
        if self.as_root:
            plan.security.update(runAsUser=0, runAsGroup=0)
        return pod

    def start_head(self, doc: dict, cluster: str) -> pods.Pod:
        head = self.pod(doc, "headgroup", cluster)
        self.net.names[op.head_service_fqdn(doc)] = head.ip
        head.start()
        return head

    def start_worker(self, doc: dict, group: str, cluster: str) -> pods.Pod:
        """The wait-gcs-ready init container (`ray health-check` every 5 s), then the worker."""
        worker = self.pod(doc, group, cluster)
        address = worker.plan.env["RAY_ADDRESS"]
        deadline = time.monotonic() + DEADLINE_S["pod"]
        while not healthy(worker, address):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{worker.plan.name}: GCS at {address} never became ready")
            time.sleep(5)
        worker.start()
        return worker


def healthy(pod: pods.Pod, address: str) -> bool:
    """One try of the wait-gcs-ready init container's `ray health-check`."""
    try:
        return pod.run(f"ray health-check --address {address}", timeout=60).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def wait_ready(pod: pods.Pod, deadline_s: float) -> float:
    """Seconds from the pod's start until its readiness probe passes (kubelet's schedule)."""
    time.sleep(max(0.0, pod.started + op.READINESS["initial_delay_s"] - time.monotonic()))
    deadline = time.monotonic() + deadline_s
    while not pod.probe():
        if time.monotonic() > deadline or (pod.proc and pod.proc.poll() is not None):
            raise RuntimeError(f"{pod.plan.name} never became ready:\n{pod.tail()}")
        time.sleep(op.READINESS["period_s"])
    return round(time.monotonic() - pod.started, 1)
