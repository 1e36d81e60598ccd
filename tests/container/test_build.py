"""container/build.py and standin.py: the tags the manifests use, the upstream base as the one
default, and a stand-in rebuilt exactly when its recipe changes."""

from __future__ import annotations

import shutil

import yaml

from container import build, standin
from vision_core.paths import ROOT


def test_image_tags_are_the_ones_the_manifests_run() -> None:
    images = {doc["kind"]: yaml.safe_dump(doc) for name in ("ray-service.yaml",
                                                            "ray-job.train.yaml")
              for doc in yaml.safe_load_all((ROOT / "kuberay" / name).read_text()) if doc}
    assert f"image: {build.image_tag('serve')}\n" in images["RayService"]
    assert f"image: {build.image_tag('train')}\n" in images["RayJob"]
    assert f"image: {build.image_tag('serve')}\n" not in images["RayJob"]


def test_the_upstream_base_is_read_from_the_dockerfile() -> None:
    upstream = build.dockerfile_arg("BASE_IMAGE")
    assert upstream == f"rayproject/ray:{build.ray_version()}-py311-cpu"


def test_the_stand_in_is_tagged_by_its_recipe(monkeypatch, tmp_path) -> None:
    tag, rootfs = standin.tags("2.60.0")
    assert tag.startswith(f"{standin.REPOSITORY}:ray2.60.0-py311-") and rootfs.startswith(
        standin.ROOTFS_REPOSITORY)
    assert standin.tags("2.60.0") == (tag, rootfs)
    copy = tmp_path / "standin"
    shutil.copytree(standin.RECIPE, copy)
    monkeypatch.setattr(standin, "RECIPE", copy)
    assert standin.tags("2.60.0") == (tag, rootfs)
    (copy / "Containerfile").write_text((copy / "Containerfile").read_text() + "\n# edit\n")
    assert standin.tags("2.60.0")[0] != tag
    assert standin.tags("2.61.0") != standin.tags("2.60.0")
