"""kuberay/ray-job.train.yaml: its entrypoint is a training command whose paths are on the mounted
claims, its cluster goes away after the job, and the same command runs here as a smoke test."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from tests.helpers import network_policy
from training import settings
from training.model import load_checkpoint
from vision_core.paths import ROOT

PROGRAM = ["python", "-m", "training.train"]


def entrypoint_args(ray_job: dict) -> list[str]:
    """The entrypoint's arguments after `python -m training.train`."""
    argv = shlex.split(ray_job["spec"]["entrypoint"])
    assert argv[:3] == PROGRAM, "the RayJob should run the training module"
    return argv[3:]


def parsed(ray_job: dict):
    try:
        return settings.parse_args(entrypoint_args(ray_job))
    except SystemExit:
        pytest.fail(f"training.train rejects the RayJob's arguments: {entrypoint_args(ray_job)}")


def ray_pods(ray_job: dict) -> dict[str, dict]:
    spec = ray_job["spec"]["rayClusterSpec"]
    pods = {"head": spec["headGroupSpec"]["template"]}
    pods.update({g["groupName"]: g["template"] for g in spec["workerGroupSpecs"]})
    return pods


def test_entrypoint_is_a_real_training_run(ray_job: dict) -> None:
    args = parsed(ray_job)
    assert not args.smoke_test and not args.resume
    assert args.dataset == "fmnist" and args.output.endswith("fmnist_cnn.pt")


def test_init_checkpoint_is_one_the_image_carries(ray_job: dict, dockerfile) -> None:
    init = PurePosixPath(parsed(ray_job).init)
    assert not init.is_absolute() and init.parts[0] == "models"  # relative to WORKDIR
    assert ("COPY", "models/ models/") in dockerfile


def test_paths_are_on_claims_every_ray_pod_mounts(ray_job: dict, manifests: dict) -> None:
    """The driver (head) and the Ray Train worker must see the same data and run folders."""
    args = parsed(ray_job)
    claims = {doc["metadata"]["name"] for doc in manifests["pvc.yaml"]}
    for group, pod in ray_pods(ray_job).items():
        volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                   for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
        assert set(volumes.values()) <= claims, group
        mounted = [PurePosixPath(m["mountPath"])
                   for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] in volumes]
        for path in (args.data_dir, args.output, args.storage_path):
            assert any(PurePosixPath(path).is_relative_to(m) for m in mounted), (group, path)


def test_cluster_goes_away_after_the_job(ray_job: dict) -> None:
    spec = ray_job["spec"]
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0 and spec["activeDeadlineSeconds"] > 0
    assert spec["rayClusterSpec"]["authOptions"] == {"mode": "token"}


def test_network_policy_selects_the_training_pods(ray_job: dict, manifests: dict) -> None:
    policy = network_policy(manifests, "vision-ai-train")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for group, pod in ray_pods(ray_job).items():
        assert selector.items() <= pod["metadata"]["labels"].items(), group
    submitter = ray_job["spec"]["submitterPodTemplate"]["metadata"]["labels"]
    peers = [peer["podSelector"]["matchLabels"] for rule in policy["spec"]["ingress"]
             for peer in rule.get("from", []) if "namespaceSelector" not in peer]
    assert any(peer.items() <= submitter.items() for peer in peers if peer != selector)


@pytest.mark.ray
def test_entrypoint_runs_as_a_smoke_test(ray_job: dict, tmp_path: Path,
                                         request: pytest.FixtureRequest) -> None:
    """The RayJob's own command, from the repo root (the image's WORKDIR), with tmp paths and
    --smoke-test (synthetic data, one epoch), against the session's Ray via RAY_ADDRESS."""
    args = parsed(ray_job)
    if not (ROOT / args.init).exists():
        pytest.skip(f"{args.init} is not trained yet (`make train`)")
    ray_address = request.getfixturevalue("ray_address")  # only now: starting Ray is slow
    tmp = {"--data-dir": tmp_path / "data", "--output": tmp_path / "out.pt",
           "--storage-path": tmp_path / "runs"}
    argv, tokens = [], iter(entrypoint_args(ray_job))
    for token in tokens:
        argv.append(token)
        if token in tmp:
            next(tokens)
            argv.append(str(tmp.pop(token)))
    assert not tmp, f"flags missing from the entrypoint: {list(tmp)}"
    proc = subprocess.run([sys.executable, "-m", "training.train", *argv, "--smoke-test"],
                          cwd=ROOT, env={**os.environ, "RAY_ADDRESS": ray_address},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    _, meta = load_checkpoint(tmp_path / "out.pt")
    assert meta["dataset"] == args.dataset and meta["train_config"]["smoke_test"] is True
