"""vision_core/serve_config.py: the one reading of config/serve.yaml, and the copies derived from
it (the image's, the RayService's, the tests' and the benchmarks') differ only where asked."""

from __future__ import annotations

import subprocess
import sys

import yaml
from ray.serve.schema import ServeDeploySchema

from vision_core import serve_config
from vision_core.paths import ROOT


def test_anchors_expand_to_every_deployment_and_serve_accepts_the_file() -> None:
    config = serve_config.load()
    ServeDeploySchema.model_validate(config)
    deployments = serve_config.app(config)["deployments"]
    by_name = {d["name"]: d for d in deployments}
    assert list(by_name) == ["Ingress", "Preprocess", "Classifier_mnist", "Classifier_fmnist",
                             "Classifier_mnist_candidate", "Classifier_fmnist_candidate",
                             "Feedback", "Rollout"]
    for d in deployments:  # the shared block reached each one
        assert d["health_check_period_s"] == 5 and d["max_queued_requests"] == 256
    for name in ("Ingress", "Preprocess", "Classifier_mnist", "Classifier_fmnist"):
        assert by_name[name]["autoscaling_config"]["min_replicas"] == 1
    def same(a: str, b: str, **but) -> bool:
        return {**by_name[a], "name": "x", **but} == {**by_name[b], "name": "x", **but}
    assert same("Classifier_mnist", "Classifier_fmnist")  # one classifier block, bound twice
    assert same("Classifier_mnist_candidate", "Classifier_fmnist_candidate")
    # A candidate slot is a classifier that scales to zero between rollouts.
    assert same("Classifier_mnist", "Classifier_mnist_candidate", autoscaling_config=None)
    assert by_name["Classifier_mnist_candidate"]["autoscaling_config"]["min_replicas"] == 0


def test_for_host_changes_only_the_http_options_asked_for() -> None:
    config = serve_config.load()
    derived = serve_config.for_host(config, "0.0.0.0", port=9999)
    assert derived["http_options"] == {**config["http_options"], "host": "0.0.0.0", "port": 9999}
    assert {k: v for k, v in derived.items() if k != "http_options"} == \
        {k: v for k, v in config.items() if k != "http_options" and not k.startswith("x-")}
    assert config["http_options"]["host"] == "127.0.0.1"  # the original is untouched
    ServeDeploySchema.model_validate(derived)


def test_the_command_writes_the_containers_copy(tmp_path) -> None:
    out = tmp_path / "serve.container.yaml"
    subprocess.run([sys.executable, "-m", "vision_core.serve_config", "--host", "0.0.0.0",
                    str(out)], cwd=ROOT, check=True, timeout=60)
    text = out.read_text()
    assert text.startswith("# Derived from config/serve.yaml")
    assert yaml.safe_load(text) == serve_config.for_host(serve_config.load(), "0.0.0.0")


def test_serve_env_is_the_controllers_env_vars() -> None:
    env = serve_config.serve_env()
    assert env == serve_config.load()["controller_options"]["runtime_env"]["env_vars"]
    assert all(isinstance(v, str) for v in env.values())
