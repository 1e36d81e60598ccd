"""What the KubeRay v1.7.0 operator makes of a manifest, as plain data: each pod's `ray start`
command, environment and readiness probe, the Serve config it PUTs, and the RayJob submitter's
command. Each function names the Go function it follows (ray-operator/controllers/ray/, tag
v1.7.0); the values come from the manifest, the defaults below from the operator.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass, field
from fractions import Fraction

import yaml

# The operator's own defaults (utils/constant.go), not values of our manifests.
GCS_PORT, METRICS_PORT, AGENT_PORT, DASHBOARD_PORT, SERVING_PORT = 6379, 8080, 52365, 8265, 8000
NAMESPACE, CLUSTER_DOMAIN = "default", "cluster.local"
READINESS = {"initial_delay_s": 10, "period_s": 5, "timeout_s": 2, "head_timeout_s": 5}
SERVE_POLL_S = 2  # rayservice_controller.go: ServiceDefaultRequeueDuration
OPEN_FILES = 65536  # BuildPod's default for RAY_START_ULIMIT_OPEN_FILES
ULIMIT = f"ulimit -n ${{RAY_START_ULIMIT_OPEN_FILES:-{OPEN_FILES}}}"
WGET = "wget --tries 1 -T {timeout} -q -O- http://localhost:{port}/{path} | grep success"
UNIFIED_HEALTH_CHECK_SINCE = (2, 53, 0)  # supportsUnifiedHealthCheck
# `ray start` flags that take an explicit true/false (convertParamMap's specialParameterOptions).
EXPLICIT_BOOLEANS = {"log-color", "include-dashboard", "include-log-monitor"}
# GetContainerCommand: Ray containers run `/bin/bash -c -- <script>` (`-cl` only with the
# operator's ENABLE_LOGIN_SHELL), the RayJob submitter `-ce`.
RAY_SHELL, SUBMITTER_SHELL = ("bash", "-c", "--"), ("bash", "-ce", "--")
# Fields of a group or its container this module does not model: refused rather than ignored.
UNMODELLED = {"group": {"resources", "labels", "numOfHosts", "suspend"},
              "container": {"command", "args"}}
# setContainerEnvVars adds these only where the container does not set them (EnvVarExists);
# the rest it appends, and the last of two equal names wins.
UNLESS_SET = {"RAY_PORT", "RAY_timeout_ms_task_wait_for_death_info",
              "RAY_gcs_server_request_timeout_seconds", "RAY_SERVE_KV_TIMEOUT_S", "RAY_ADDRESS",
              "RAY_USAGE_STATS_KUBERAY_IN_USE", "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE"}

_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


@dataclass
class PodPlan:
    """One Ray pod as the operator would create it."""

    name: str
    node_type: str                      # "head" or "worker"
    group: str
    command: str                        # the container's `bash -c` script
    env: dict[str, str]
    readiness: list[str]                # shell commands run in the pod; ready when all exit 0
    probe_timeout_s: int
    labels: dict[str, str] = field(default_factory=dict)
    security: dict = field(default_factory=dict)   # pod securityContext merged with the container's
    mounts: dict[str, str] = field(default_factory=dict)  # mountPath -> claimName
    shm_bytes: int | None = None        # /dev/shm emptyDir (medium Memory), sized to the limit
    image: str = ""                     # the container's image
    shell: tuple[str, ...] = RAY_SHELL  # the container's `command`, `args` being [command]
    limits: dict[str, str] = field(default_factory=dict)  # the container's resources.limits


def quantity(text) -> Fraction:
    """A Kubernetes quantity ("500m", "2Gi", "1e3") as an exact number."""
    number, suffix = re.fullmatch(r"([0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)", str(text)).groups()
    return Fraction(number) * _SUFFIX[suffix]


def quantity_value(text) -> int:
    """A Kubernetes quantity rounded up to an integer, as resource.Quantity.Value() does."""
    return math.ceil(quantity(text))


def cluster_spec(doc: dict) -> dict:
    """The RayCluster spec a RayService (rayClusterConfig) or a RayJob (rayClusterSpec) embeds."""
    return doc["spec"].get("rayClusterConfig") or doc["spec"]["rayClusterSpec"]


def head_service_fqdn(doc: dict) -> str:
    """GenerateFQDNServiceName: `<owner>-head-svc.<namespace>.svc.<domain>` (RayService/RayJob)."""
    return f"{doc['metadata']['name']}-head-svc.{NAMESPACE}.svc.{CLUSTER_DOMAIN}"


def group_spec(doc: dict, group: str) -> dict:
    spec = cluster_spec(doc)
    if group == "headgroup":
        return spec["headGroupSpec"]
    (found,) = [g for g in spec["workerGroupSpecs"] if g["groupName"] == group]
    return found


def ray_start_params(doc: dict, group: str) -> dict[str, str]:
    """setMissingRayStartParams + the head's no-monitor + generateRayStartCommand's resources."""
    spec, head = group_spec(doc, group), group == "headgroup"
    unmodelled = (UNMODELLED["group"] & spec.keys()) | (
        UNMODELLED["container"] & container(doc, group).keys())
    if unmodelled:
        raise NotImplementedError(f"{group}: the rehearsal does not model {sorted(unmodelled)}")
    params = {k: str(v) for k, v in (spec.get("rayStartParams") or {}).items()}
    if head:
        params.setdefault("dashboard-host", "0.0.0.0")
        if cluster_spec(doc).get("enableInTreeAutoscaling"):
            params["no-monitor"] = "true"
    else:
        params.setdefault("address", f"{head_service_fqdn(doc)}:{head_port(doc)}")
    params.setdefault("metrics-export-port", str(METRICS_PORT))
    params["block"] = "true"
    params.setdefault("dashboard-agent-listen-port", str(AGENT_PORT))
    resources = container(doc, group).get("resources", {})
    for key, source in (("num-cpus", "cpu"), ("memory", "memory")):
        amount = resources.get("limits", {}).get(source)
        if key == "num-cpus" and amount is None:
            amount = resources.get("requests", {}).get(source)  # CPU falls back to the request
        if key not in params and amount is not None and quantity_value(amount):
            params[key] = str(quantity_value(amount))
    return params


def ray_start_command(params: dict[str, str], head: bool) -> str:
    """convertParamMap: sorted `--key=value`; a true/false value is a bare flag or nothing."""
    flags = ""
    for key in sorted(params):
        value = params[key]
        if value.lower() in ("true", "false") and key not in EXPLICIT_BOOLEANS:
            flags += f" --{key} " if value.lower() == "true" else ""
        else:
            flags += f" --{key}={value} "
    return ("ray start --head " if head else "ray start ") + flags


def container(doc: dict, group: str) -> dict:
    return group_spec(doc, group)["template"]["spec"]["containers"][0]


def head_port(doc: dict) -> str:
    """GetHeadPort: the head's `port` start parameter, else 6379."""
    return str(cluster_spec(doc)["headGroupSpec"].get("rayStartParams", {}).get("port", GCS_PORT))


def container_env(entries: list[dict], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """A container's `env` resolved as the kubelet does (values and Secret references)."""
    env = {}
    for entry in entries:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        ref = entry["valueFrom"]["secretKeyRef"]  # the only valueFrom the manifests use
        value = secrets.get(ref["name"], {}).get(ref["key"])
        if value is None and not ref.get("optional"):
            raise LookupError(f"{entry['name']}: Secret {ref['name']}/{ref['key']} is missing")
        if value is not None:
            env[entry["name"]] = value
    return env


def pod_plan(doc: dict, group: str, pod_name: str, cluster_name: str, token: str | None,
             secrets: dict[str, dict[str, str]]) -> PodPlan:
    """DefaultHeadPodTemplate / DefaultWorkerPodTemplate + BuildPod for one pod of `group`."""
    head, spec, box = group == "headgroup", group_spec(doc, group), container(doc, group)
    params = ray_start_params(doc, group)
    start = ray_start_command(params, head)
    env = container_env(box.get("env", []), secrets)
    if cluster_spec(doc).get("authOptions", {}).get("mode") == "token":  # SetContainerTokenAuthEnvVars
        env.setdefault("RAY_AUTH_MODE", "token")
        env.setdefault("RAY_AUTH_TOKEN", token)
    env.update(setup_env(doc, group, pod_name, cluster_name, start))
    labels = {**spec["template"]["metadata"].get("labels", {}), "ray.io/node-type": (
        "head" if head else "worker"), "ray.io/group": group, "ray.io/cluster": cluster_name}
    if doc["kind"] == "RayService":  # BuildPod: workers serve; the controller decides the head
        labels["ray.io/serve"] = "false" if head else "true"
    pod_security = spec["template"]["spec"].get("securityContext", {})
    mounts = {m["mountPath"]: claim for m in box.get("volumeMounts", [])
              for v in spec["template"]["spec"].get("volumes", [])
              if v["name"] == m["name"] and (claim := v.get("persistentVolumeClaim", {})
                                               .get("claimName"))}
    limit = box.get("resources", {}).get("limits", {}).get("memory")
    return PodPlan(
        name=pod_name, node_type="head" if head else "worker", group=group,
        command=f"{ULIMIT}; {start}", env=env, readiness=readiness(doc, head, params, box),
        probe_timeout_s=READINESS["head_timeout_s" if head else "timeout_s"], labels=labels,
        security={**pod_security, **box.get("securityContext", {})}, mounts=mounts,
        shm_bytes=quantity_value(limit) if limit and "plasma-directory" not in params else None,
        image=box.get("image", ""), limits=dict(box.get("resources", {}).get("limits", {})))


def setup_env(doc: dict, group: str, pod_name: str, cluster_name: str, start: str) -> dict:
    """setContainerEnvVars: what the operator adds to the Ray container's environment."""
    head, env = group == "headgroup", {}
    ip = "127.0.0.1" if head else head_service_fqdn(doc)  # LOCAL_HOST / fqdnRayIP
    if not head:
        env.update(FQ_RAY_IP=ip, RAY_IP=ip.split(".")[0])
    env.update(RAY_CLUSTER_NAME=cluster_name, RAY_CLUSTER_NAMESPACE=NAMESPACE,
               RAY_CLOUD_INSTANCE_ID=pod_name, RAY_NODE_TYPE_NAME=group,
               KUBERAY_GEN_RAY_START_CMD=start, RAY_PORT=head_port(doc))
    if doc["kind"] == "RayService":  # "to improve service SLA"
        env.update(RAY_timeout_ms_task_wait_for_death_info="0",
                   RAY_gcs_server_request_timeout_seconds="5", RAY_SERVE_KV_TIMEOUT_S="5")
    env.update(RAY_ADDRESS=f"{ip}:{head_port(doc)}", RAY_USAGE_STATS_KUBERAY_IN_USE="1",
               RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE="1")
    if head:
        env["RAY_USAGE_STATS_EXTRA_TAGS"] = f"kuberay_version=v1.7.0;kuberay_crd={doc['kind']}"
    user = {e["name"] for e in container(doc, group).get("env", [])}
    return {k: v for k, v in env.items() if k not in user or k not in UNLESS_SET}


def readiness(doc: dict, head: bool, params: dict[str, str], box: dict) -> list[str]:
    """initLivenessAndReadinessProbe: Ray >= 2.53 answers one HTTP check on the agent port; a
    RayService worker must also pass the Serve proxy's health check (exec probe, wget)."""
    agent = int(params.get("dashboard-agent-listen-port", AGENT_PORT))
    version = tuple(int(x) for x in cluster_spec(doc)["rayVersion"].split(".")[:3])
    if version < UNIFIED_HEALTH_CHECK_SINCE:
        raise NotImplementedError("Ray < 2.53 uses the two-endpoint probe, not modelled")
    timeout = READINESS["head_timeout_s" if head else "timeout_s"]
    # httpGet: any 2xx/3xx answer passes (kubelet); wget fails on 4xx/5xx the same way.
    checks = [f"wget --tries 1 -T {timeout} -q -O /dev/null http://localhost:{agent}/api/healthz"]
    if doc["kind"] == "RayService" and not head:
        serve = {p["name"]: p["containerPort"] for p in box.get("ports", [])}.get(
            "serve", SERVING_PORT)
        checks = [WGET.format(timeout=READINESS["timeout_s"], port=agent,
                              path="api/local_raylet_healthz"),
                  WGET.format(timeout=READINESS["initial_delay_s"], port=serve, path="-/healthz")]
    return checks


def serve_config_json(service: dict) -> bytes:
    """updateServeDeployment: serveConfigV2 parsed as YAML and sent as JSON."""
    return json.dumps(yaml.safe_load(service["spec"]["serveConfigV2"])).encode()


def job_submit_script(job: dict, dashboard: str, job_id: str, entrypoint: str) -> str:
    """BuildJobSubmitCommand (K8sJobMode) as the submitter container's `bash -c` script."""
    address = dashboard if dashboard.startswith("http://") else f"http://{dashboard}"
    health = (f"python -c \"import urllib.request; r=urllib.request.urlopen("
              f"'{address}/api/gcs_healthz', timeout=10); exit(0 if b'success' in r.read() "
              f"else 1)\"")
    spec, submit = job["spec"], ["ray", "job", "submit", "--address", address, "--no-wait"]
    if spec.get("runtimeEnvYAML"):
        submit += ["--runtime-env-json", json.dumps(json.dumps(
            yaml.safe_load(spec["runtimeEnvYAML"]), separators=(",", ":")))]
    if spec.get("metadata"):
        submit += ["--metadata-json", json.dumps(json.dumps(spec["metadata"]))]
    submit += ["--submission-id", job_id]
    for key, flag in (("entrypointNumCpus", "--entrypoint-num-cpus"),
                      ("entrypointNumGpus", "--entrypoint-num-gpus")):
        if spec.get(key, 0) > 0:
            submit += [flag, f"{float(spec[key]):f}"]
    if spec.get("entrypointResources"):
        submit += ["--entrypoint-resources", json.dumps(spec["entrypointResources"])]
    status = f"ray job status --address {address} {job_id} >/dev/null 2>&1"
    wait = (f"until {health} >/dev/null 2>&1 ; do echo {shlex.quote('Waiting for ' + address)} ;"
            " sleep 2 ; done ;")
    return (f"{wait} if ! {status} ; then {' '.join(submit)} -- {entrypoint.strip()} ; fi ; "
            f"ray job logs --address {address} --follow {job_id}")


def submitter_plan(job: dict, pod_name: str, cluster_name: str, token: str | None,
                   dashboard: str, job_id: str, entrypoint: str) -> PodPlan:
    """getSubmitterTemplate: the submitterPodTemplate's container running the submit script,
    with RAY_DASHBOARD_ADDRESS, RAY_JOB_SUBMISSION_ID and the token added."""
    template = job["spec"]["submitterPodTemplate"]
    box = template["spec"]["containers"][0]
    env = container_env(box.get("env", []), {})
    env.update(RAY_DASHBOARD_ADDRESS=dashboard, RAY_JOB_SUBMISSION_ID=job_id)
    if cluster_spec(job).get("authOptions", {}).get("mode") == "token":
        env.setdefault("RAY_AUTH_MODE", "token")
        env.setdefault("RAY_AUTH_TOKEN", token)
    return PodPlan(name=pod_name, node_type="submitter", group="submitter",
                   command=job_submit_script(job, dashboard, job_id, entrypoint), env=env,
                   readiness=[], probe_timeout_s=0,
                   labels=dict(template.get("metadata", {}).get("labels", {})),
                   security={**template["spec"].get("securityContext", {}),
                             **box.get("securityContext", {})},
                   image=box.get("image", ""), shell=SUBMITTER_SHELL,
                   limits=dict(box.get("resources", {}).get("limits", {})))
