"""Every manifest in kuberay/: valid against its schema, with no key the API server would drop,
hardened containers, and one Ray version and one image everywhere.

No Kubernetes runs here, so the KubeRay v1.7.0 CRDs ($KUBERAY_CRDS) stand in for the API server.
With a cluster at hand, `kubectl apply --dry-run=server -f kuberay/` is the authoritative check.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Iterator

import jsonschema
import pytest
import ray

from kuberay.rehearsal.operator import quantity
from vision_core.paths import ROOT

FILES = sorted(p.name for p in (ROOT / "kuberay").glob("*.yaml"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Kubernetes' restricted Pod Security profile, plus the image's own uid (the `ray` user).
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# The ObjectMeta fields a manifest may set (the CRDs leave metadata to the API server).
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                   "labels": STRING_MAP, "annotations": STRING_MAP},
}


def undeclared(value, schema: dict, path: str = "") -> list[str]:
    """Paths of the keys `schema` does not declare: the API server prunes those without a word."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, list):
        return [p for i, item in enumerate(value)
                for p in undeclared(item, schema.get("items", {}), f"{path}[{i}]")]
    if not isinstance(value, dict):
        return []
    declared = schema.get("properties", {})
    extra = schema.get("additionalProperties", False)  # a structural schema prunes by default
    found = []
    for key, item in value.items():
        if key in declared:
            found += undeclared(item, declared[key], f"{path}.{key}")
        elif isinstance(extra, dict):
            found += undeclared(item, extra, f"{path}.{key}")
        elif extra is not True:
            found.append(f"{path}.{key}")
    return found


def _object(spec: dict) -> dict:
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": OBJECT_META, "spec": spec}}


def schemas(crds: dict[str, dict]) -> dict[tuple[str, str], dict]:
    """{(apiVersion, kind): schema}. Core kinds reuse the core/v1 schemas the CRDs embed."""
    known = {("ray.io/v1", kind): {**s, "properties": {**s["properties"], "metadata": OBJECT_META}}
             for kind, s in crds.items()}
    cluster = crds["RayCluster"]["properties"]["spec"]["properties"]
    pod_spec = cluster["headGroupSpec"]["properties"]["template"]["properties"]["spec"]
    pod = pod_spec["properties"]
    claim = pod["volumes"]["items"]["properties"]["ephemeral"]["properties"]
    affinity = pod["affinity"]["properties"]["podAffinity"]["properties"]
    selector = (affinity["requiredDuringSchedulingIgnoredDuringExecution"]["items"]
                ["properties"]["labelSelector"])
    rules = cluster["networkPolicy"]["properties"]["head"]["properties"]
    int_or_string = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    known[("v1", "Pod")] = _object(pod_spec)
    known[("v1", "PersistentVolumeClaim")] = _object(
        claim["volumeClaimTemplate"]["properties"]["spec"])
    known[("networking.k8s.io/v1", "NetworkPolicy")] = _object({
        "type": "object", "required": ["podSelector"],
        "properties": {"podSelector": selector, "ingress": rules["ingressRules"],
                       "egress": rules["egressRules"],
                       "policyTypes": {"type": "array",
                                       "items": {"enum": ["Ingress", "Egress"]}}}})
    known[("policy/v1", "PodDisruptionBudget")] = _object({
        "type": "object",
        "properties": {"minAvailable": int_or_string, "maxUnavailable": int_or_string,
                       "selector": selector, "unhealthyPodEvictionPolicy": {"type": "string"}}})
    known[("monitoring.coreos.com/v1", "PodMonitor")] = _object(POD_MONITOR_SPEC)
    return known


# The Prometheus operator's CRDs are not available offline: this is the part of PodMonitor's spec
# that kuberay/pod-monitor.yaml uses, written from the operator's API reference (v1). It is strict
# like the CRD's structural schema, so a misspelt key fails here too.
_RELABEL = {"type": "object", "additionalProperties": False, "properties": {
    "sourceLabels": {"type": "array", "items": {"type": "string"}},
    "separator": {"type": "string"}, "targetLabel": {"type": "string"},
    "regex": {"type": "string"}, "replacement": {"type": "string"},
    "action": {"enum": ["replace", "keep", "drop", "labelmap", "labeldrop", "labelkeep",
                        "hashmod", "lowercase", "uppercase", "keepequal", "dropequal"]}}}
POD_MONITOR_SPEC = {
    "type": "object", "required": ["selector", "podMetricsEndpoints"],
    "additionalProperties": False,
    "properties": {
        "jobLabel": {"type": "string"},
        "selector": {"type": "object", "additionalProperties": False, "properties": {
            "matchLabels": STRING_MAP, "matchExpressions": {"type": "array"}}},
        "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
            "any": {"type": "boolean"}, "matchNames": {"type": "array",
                                                       "items": {"type": "string"}}}},
        "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["port"], "additionalProperties": False,
            "properties": {
                "port": {"type": "string"}, "path": {"type": "string"},
                "scheme": {"enum": ["http", "https"]},
                "interval": {"type": "string", "pattern": "^(([0-9]+)(ms|s|m|h))+$"},
                "scrapeTimeout": {"type": "string", "pattern": "^(([0-9]+)(ms|s|m|h))+$"},
                "honorLabels": {"type": "boolean"},
                "relabelings": {"type": "array", "items": _RELABEL},
                "metricRelabelings": {"type": "array", "items": _RELABEL}}}},
    },
}


def schema_errors(doc: dict, schema: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    found = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]
    return found + [f"{p}: not in the schema (would be dropped)" for p in undeclared(doc, schema)]


@pytest.mark.parametrize("name", FILES)
def test_manifest_parses_and_names_itself(name: str, manifests: dict) -> None:
    assert manifests[name], f"kuberay/{name} holds no document"
    for doc in manifests[name]:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), name
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "vision-ai", name


def test_the_expected_manifests_exist() -> None:
    assert {"ray-service.yaml", "ray-job.train.yaml", "pvc.yaml", "pdb.yaml"} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_manifest_matches_its_schema_strictly(name: str, manifests: dict, crd_schemas) -> None:
    known = schemas(crd_schemas)
    for doc in manifests[name]:
        key = (doc["apiVersion"], doc["kind"])
        assert key in known, f"kuberay/{name}: no schema for {key}; add one to schemas()"
        assert schema_errors(doc, known[key]) == [], f"kuberay/{name} {doc['kind']}"


HEAD = ["spec", "rayClusterConfig", "headGroupSpec", "template", "spec", "containers", 0]


@pytest.mark.parametrize(("path", "right", "wrong", "reported"), [
    (["spec", "rayClusterConfig"], "workerGroupSpecs", "workerGroupSpec",
     ".spec.rayClusterConfig.workerGroupSpec"),
    (HEAD, "resources", "resource",
     ".spec.rayClusterConfig.headGroupSpec.template.spec.containers[0].resource"),
])
def test_a_misspelt_key_is_caught(ray_service: dict, crd_schemas, path: list, right: str,
                                  wrong: str, reported: str) -> None:
    """Plain JSON-Schema validation accepts these typos; the strict walk must not."""
    doc = copy.deepcopy(ray_service)
    node = doc
    for step in path:
        node = node[step]
    node[wrong] = node.pop(right)
    schema = schemas(crd_schemas)[("ray.io/v1", "RayService")]
    assert jsonschema.Draft7Validator(schema).is_valid(doc)
    assert undeclared(doc, schema) == [reported]


def pod_specs(node, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every pod spec (a mapping with `containers`) anywhere in a manifest."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield path, node
        for key, value in node.items():
            yield from pod_specs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from pod_specs(item, f"{path}[{i}]")


def ray_cluster(doc: dict) -> dict:
    """The RayCluster spec a RayService (rayClusterConfig) or a RayJob (rayClusterSpec) embeds."""
    spec = doc.get("spec", {})
    return spec.get("rayClusterConfig") or spec.get("rayClusterSpec") or {}


def containers(manifests: dict) -> Iterator[tuple[str, dict]]:
    """(where, container) for every container, and for KubeRay's autoscaler sidecar."""
    for name, docs in manifests.items():
        for doc in docs:
            for path, spec in pod_specs(doc):
                for c in spec.get("initContainers", []) + spec["containers"]:
                    yield f"{name}{path}/{c['name']}", c
            if ray_cluster(doc).get("enableInTreeAutoscaling"):
                yield f"{name}/autoscaler", ray_cluster(doc).get("autoscalerOptions", {})


def test_every_container_has_resources_and_a_restricted_security_context(manifests) -> None:
    seen = 0
    for where, c in containers(manifests):
        seen += 1
        requests, limits = c["resources"]["requests"], c["resources"]["limits"]
        assert {"cpu", "memory"} <= requests.keys() & limits.keys(), where
        # A pod above its memory request is evicted first under node pressure: rule that out.
        assert quantity(requests["memory"]) == quantity(limits["memory"]), where
        assert quantity(requests["cpu"]) <= quantity(limits["cpu"]), where
        sc = c["securityContext"]
        assert {k: sc.get(k) for k in RESTRICTED} == RESTRICTED, where
    assert seen >= 7  # service head, worker, autoscaler; job head, worker, submitter; pvc shell


def test_every_pod_runs_as_the_image_user(manifests) -> None:
    for name, docs in manifests.items():
        for doc in docs:
            for path, spec in pod_specs(doc):
                sc = spec["securityContext"]
                assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000, f"{name}{path}"
                assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, f"{name}{path}"


def test_one_ray_version_everywhere(manifests, dockerfile) -> None:
    """pyproject's pin, the venv, the image's base tag and rayVersion must name one Ray."""
    (pin,) = [re.fullmatch(r"ray\[[a-z,]+\]==([0-9.]+)", d).group(1)
              for d in PYPROJECT["project"]["dependencies"] if d.startswith("ray[")]
    assert ray.__version__ == pin
    (base,) = [args.split("=", 1)[1] for keyword, args in dockerfile
               if keyword == "ARG" and args.startswith("BASE_IMAGE=")]
    tag = re.fullmatch(r"rayproject/ray:([0-9.]+)-py(\d)(\d+)-cpu", base)
    assert tag, f"ARG BASE_IMAGE={base}: pin rayproject/ray:<version>-py<python>-cpu"
    assert tag.group(1) == pin
    assert f">={tag.group(2)}.{tag.group(3)}" in PYPROJECT["project"]["requires-python"]
    versions = [ray_cluster(doc)["rayVersion"] for docs in manifests.values() for doc in docs
                if doc["apiVersion"] == "ray.io/v1"]
    assert versions and set(versions) == {pin}


def test_one_image_everywhere(manifests) -> None:
    """Every pod runs the project image at the project's version, never pulled (minikube): the
    RayJob the `train` target (torch), everything else the `serve` target (Dockerfile)."""
    version = PYPROJECT["project"]["version"]
    for where, c in containers(manifests):
        image = f"vision-ai:{version}" + ("-train" if where.startswith("ray-job") else "")
        assert c.get("image", image) == image, where
        assert c.get("imagePullPolicy") == "IfNotPresent", where


def test_no_secret_value_is_committed(manifests) -> None:
    for where, c in containers(manifests):
        for env in c.get("env", []):
            if re.search(r"KEY|TOKEN|PASSWORD|SECRET", env["name"]):
                assert "value" not in env, f"{where}: {env['name']} must come from a Secret"
    assert not [d for docs in manifests.values() for d in docs if d["kind"] == "Secret"]
