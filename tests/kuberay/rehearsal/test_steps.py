"""kuberay/rehearsal/steps.py: the parts that decide what is sent (pure, no pods)."""

from __future__ import annotations

import yaml

from kuberay.rehearsal import steps


def test_one_numeric_user_config_knob_changes_and_nothing_else(ray_service: dict) -> None:
    config, knob, old, new = steps.changed_knob(ray_service)
    original = yaml.safe_load(ray_service["spec"]["serveConfigV2"])
    app, rest = knob.split("/", 1)
    deployment, key = rest.split(".user_config.")
    assert old != new and isinstance(new, type(old))
    (dep,) = [d for d in config["applications"][0]["deployments"] if d["name"] == deployment]
    assert dep["user_config"][key] == new
    dep["user_config"][key] = old
    assert config == original


def test_entrypoint_paths_move_to_where_the_pods_see_the_claims() -> None:
    argv = ["python", "-m", "t", "--data-dir", "/data", "--out", "/models-out/x.pt", "/dataset"]
    moved = steps.pod_path(argv, {"/data": "/tmp/pvc/d", "/models-out": "/tmp/pvc/m"})
    assert moved == ["python", "-m", "t", "--data-dir", "/tmp/pvc/d", "--out", "/tmp/pvc/m/x.pt",
                     "/dataset"]


def test_golden_images_carry_their_labels() -> None:
    found = steps.golden("mnist")
    assert found and all(isinstance(label, int) and data[:4] == b"\x89PNG"
                         for data, label in found)
