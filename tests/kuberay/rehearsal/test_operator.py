"""kuberay/rehearsal/operator.py: the pods, probes and commands KubeRay v1.7.0 derives from our
manifests (pure: no Ray, no root)."""

from __future__ import annotations

import copy
import json
import shlex

import pytest
import yaml

from kuberay.rehearsal import operator as op


def test_quantities_round_up_like_kubernetes() -> None:
    assert op.quantity_value("500m") == 1 and op.quantity_value("1") == 1
    assert op.quantity_value("1500m") == 2 and op.quantity_value("2Gi") == 2 * 2**30
    assert op.quantity_value("2560Mi") == 2560 * 2**20 and op.quantity_value("1e3") == 1000


def test_head_command_from_the_service_manifest(ray_service: dict) -> None:
    params = op.ray_start_params(ray_service, "headgroup")
    limits = op.container(ray_service, "headgroup")["resources"]["limits"]
    assert params["num-cpus"] == "0"                       # set in rayStartParams: kept
    assert params["memory"] == str(op.quantity_value(limits["memory"]))  # from the limit
    assert params["no-monitor"] == "true"                  # in-tree autoscaling
    assert params["dashboard-agent-listen-port"] == "52365" and params["block"] == "true"
    command = op.ray_start_command(params, head=True)
    flags = shlex.split(command)[3:]
    assert shlex.split(command)[:3] == ["ray", "start", "--head"]
    assert flags == sorted(flags, key=lambda f: f.lstrip("-").split("=")[0])
    assert "--no-monitor" in flags and "--block" in flags and "--no-monitor=true" not in flags


def test_worker_joins_the_head_service_with_resources_from_its_limits(ray_service: dict) -> None:
    (group,) = op.cluster_spec(ray_service)["workerGroupSpecs"]
    params = op.ray_start_params(ray_service, group["groupName"])
    assert params["address"] == "vision-ai-head-svc.default.svc.cluster.local:6379"
    assert params["memory"] == group["rayStartParams"]["memory"]  # explicit beats the limit
    limit = group["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"]
    assert params["num-cpus"] == str(op.quantity_value(limit))
    assert "dashboard-host" not in params and "no-monitor" not in params


def test_a_false_value_drops_the_flag_except_explicit_booleans() -> None:
    command = op.ray_start_command({"log-color": "false", "disable-usage-stats": "false",
                                    "include-dashboard": "true"}, head=True)
    assert "--log-color=false" in command and "disable-usage-stats" not in command
    assert "--include-dashboard=true" in command


def test_service_pods_get_token_auth_and_the_service_settings(ray_service: dict) -> None:
    plan = op.pod_plan(ray_service, "cpu", "w", "vision-ai-x", "t0ken", secrets={})
    env = plan.env
    assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"] == "t0ken"
    assert env["RAY_timeout_ms_task_wait_for_death_info"] == "0"
    assert env["RAY_gcs_server_request_timeout_seconds"] == "5"
    assert env["RAY_SERVE_KV_TIMEOUT_S"] == "5"
    assert env["RAY_ADDRESS"] == "vision-ai-head-svc.default.svc.cluster.local:6379"
    assert "VISION_API_KEY" not in env  # its Secret is optional and absent
    assert plan.labels["ray.io/serve"] == "true" and plan.shm_bytes


def test_a_present_secret_is_read_and_a_required_missing_one_fails(ray_service: dict) -> None:
    secrets = {"vision-ai-api-key": {"api-key": "k"}}
    assert op.pod_plan(ray_service, "cpu", "w", "c", "t", secrets).env["VISION_API_KEY"] == "k"
    doc = copy.deepcopy(ray_service)
    entry = op.container(doc, "cpu")["env"][0]
    entry["valueFrom"]["secretKeyRef"]["optional"] = False
    with pytest.raises(LookupError):
        op.pod_plan(doc, "cpu", "w", "c", "t", secrets={})


def test_job_pods_do_not_get_the_service_settings(ray_job: dict) -> None:
    plan = op.pod_plan(ray_job, "headgroup", "h", "c", "t", secrets={})
    assert "RAY_SERVE_KV_TIMEOUT_S" not in plan.env and "ray.io/serve" not in plan.labels
    assert plan.mounts == {"/data": "vision-ai-data", "/models-out": "vision-ai-models-out"}


def test_serve_workers_are_ready_only_with_a_healthy_proxy(ray_service: dict) -> None:
    worker = op.pod_plan(ray_service, "cpu", "w", "c", "t", secrets={}).readiness
    head = op.pod_plan(ray_service, "headgroup", "h", "c", "t", secrets={}).readiness
    assert any("localhost:8000/-/healthz" in check and "grep success" in check for check in worker)
    assert len(head) == 1 and "52365/api/healthz" in head[0]


def test_unmodelled_fields_are_refused(ray_service: dict) -> None:
    doc = copy.deepcopy(ray_service)
    op.container(doc, "cpu")["command"] = ["sleep", "1"]
    with pytest.raises(NotImplementedError):
        op.ray_start_params(doc, "cpu")


def test_serve_config_is_sent_as_json(ray_service: dict) -> None:
    sent = json.loads(op.serve_config_json(ray_service))
    assert sent == yaml.safe_load(ray_service["spec"]["serveConfigV2"])


def test_job_submit_script_follows_k8s_job_mode(ray_job: dict) -> None:
    script = op.job_submit_script(ray_job, "head:8265", "id-1", "python -m x --smoke-test")
    assert "ray job submit --address http://head:8265 --no-wait" in script
    assert "--submission-id id-1 -- python -m x --smoke-test ;" in script
    assert script.endswith("ray job logs --address http://head:8265 --follow id-1")
    doc = copy.deepcopy(ray_job)
    doc["spec"].update(runtimeEnvYAML="env_vars: {A: b}\n", entrypointNumCpus=1)
    script = op.job_submit_script(doc, "head:8265", "id-1", "python x")
    assert '--runtime-env-json "{\\"env_vars\\":{\\"A\\":\\"b\\"}}"' in script
    assert "--entrypoint-num-cpus 1.000000" in script
