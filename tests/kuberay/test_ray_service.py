"""kuberay/ray-service.yaml: its Serve config builds the real app, and the cluster, Services,
disruption budget and network policy around it fit together. (That the Serve config is
config/serve.yaml is checked once, in test_sync.py.)"""

from __future__ import annotations

import importlib
import re

from ray.serve.schema import ServeDeploySchema

from kuberay.rehearsal.operator import quantity
from tests.helpers import cluster, head_container, network_policy, ray_containers, serve_config_v2


def test_serve_config_is_a_valid_serve_deploy_config(ray_service: dict) -> None:
    ServeDeploySchema.model_validate(serve_config_v2(ray_service))


def test_import_path_builds_the_deployments_it_configures(ray_service: dict) -> None:
    """What Serve does with import_path + args, without a cluster: the names must line up."""
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve._private.build_app import build_app

    for app in serve_config_v2(ray_service)["applications"]:
        module, _, attribute = app["import_path"].partition(":")
        builder = getattr(importlib.import_module(module), attribute)
        built = build_app(call_user_app_builder_with_args_if_necessary(builder, app["args"]),
                          name=app["name"])
        assert {d.name for d in built.deployments} == {d["name"] for d in app["deployments"]}
        assert built.ingress_deployment_name == "Ingress"


def test_serve_port_is_the_one_the_services_use(ray_service: dict) -> None:
    port = serve_config_v2(ray_service)["http_options"]["port"]
    ports = {p["name"]: p["containerPort"] for p in head_container(ray_service)["ports"]}
    assert ports["serve"] == port  # KubeRay builds the serve Service from the port named "serve"
    assert ports["dashboard"] == 8265
    assert ray_service["spec"]["serveService"]["spec"]["type"] == "NodePort"


def test_head_runs_no_replicas_and_the_workers_autoscale(ray_service: dict) -> None:
    head = cluster(ray_service)["headGroupSpec"]["rayStartParams"]
    assert head["num-cpus"] == "0" and head["dashboard-host"] == "0.0.0.0"
    assert cluster(ray_service)["enableInTreeAutoscaling"] is True
    for group in cluster(ray_service)["workerGroupSpecs"]:
        assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert ray_service["spec"]["excludeHeadPodFromServeSvc"] is True


def test_ray_endpoints_need_a_token_and_startup_has_a_deadline(ray_service: dict) -> None:
    assert cluster(ray_service)["authOptions"] == {"mode": "token"}
    timeout = ray_service["metadata"]["annotations"]["ray.io/initializing-timeout"]
    assert re.fullmatch(r"\d+[smh]?", timeout), "a Go duration (e.g. 15m) or seconds"


def test_api_key_comes_from_an_optional_secret(ray_service: dict) -> None:
    """Every Ray container gets the key the app reads, from a Secret that may be absent."""
    names = {app["args"]["api_key_env"] for app in serve_config_v2(ray_service)["applications"]}
    for container in ray_containers(ray_service):
        env = {e["name"]: e for e in container["env"]}
        for name in names:
            ref = env[name]["valueFrom"]["secretKeyRef"]
            assert ref["optional"] is True and "value" not in env[name]


def test_disruption_budget_covers_the_serving_workers_only(ray_service: dict,
                                                           manifests: dict) -> None:
    (pdb,) = manifests["pdb.yaml"]
    selector = dict(pdb["spec"]["selector"]["matchLabels"])
    assert selector.pop("ray.io/node-type") == "worker"  # the label KubeRay puts on worker pods
    for group in cluster(ray_service)["workerGroupSpecs"]:
        assert selector.items() <= group["template"]["metadata"]["labels"].items()
    assert pdb["spec"]["minAvailable"] <= min(
        g["minReplicas"] for g in cluster(ray_service)["workerGroupSpecs"])


def test_network_policy_opens_only_the_serve_port(ray_service: dict, manifests: dict) -> None:
    policy = network_policy(manifests, "vision-ai-serve")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    groups = [cluster(ray_service)["headGroupSpec"], *cluster(ray_service)["workerGroupSpecs"]]
    for group in groups:
        assert selector.items() <= group["template"]["metadata"]["labels"].items()
    open_to_all = [rule for rule in policy["spec"]["ingress"] if "from" not in rule]
    port = serve_config_v2(ray_service)["http_options"]["port"]
    assert [p["port"] for rule in open_to_all for p in rule["ports"]] == [port]


def test_replicas_fit_the_workers_by_cpu_and_memory(ray_service: dict) -> None:
    """Ray places a replica only where its reservations fit. The minimum set must fit one worker
    and every replica at max_replicas must fit maxReplicas workers, or replicas stay pending; and
    the reservations, the object store and Ray's own processes must fit the pod's memory limit,
    or the pod is OOM-killed instead."""
    deployments = serve_config_v2(ray_service)["applications"][0]["deployments"]
    [group] = cluster(ray_service)["workerGroupSpecs"]
    params = group["rayStartParams"]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    worker_memory, worker_cpus = int(params["memory"]), quantity(limits["cpu"])

    def reserved(key: str, replicas: str) -> float:
        return sum(d["ray_actor_options"][key] * d["autoscaling_config"][replicas]
                   for d in deployments)

    assert all(d["ray_actor_options"].get("memory") for d in deployments)
    assert reserved("memory", "min_replicas") <= worker_memory
    assert reserved("num_cpus", "min_replicas") <= worker_cpus
    assert reserved("memory", "max_replicas") <= worker_memory * group["maxReplicas"]
    assert reserved("num_cpus", "max_replicas") <= worker_cpus * group["maxReplicas"]
    ray_own = 0.7 * 2**30  # raylet, agents, proxy and HAProxy manager, measured (~0.7 GiB RSS)
    assert worker_memory + int(params["object-store-memory"]) + ray_own <= \
        quantity(limits["memory"])
