"""Fixtures for the deployment tests: the manifests in kuberay/, the Dockerfile and the CRDs
(helpers: tests/helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.helpers import CRD_FILES, CRDS_MISSING, FAST_LOADER, KUBERAY, load_docs, only
from vision_core.paths import ROOT
from vision_core.serve_config import load


@pytest.fixture(scope="session")
def manifests() -> dict[str, list[dict]]:
    """{file name: its documents} for every kuberay/*.yaml."""
    return {path.name: load_docs(path) for path in sorted(KUBERAY.glob("*.yaml"))}


@pytest.fixture(scope="session")
def ray_service(manifests) -> dict:
    return only(manifests, "ray-service.yaml", "RayService")


@pytest.fixture(scope="session")
def ray_job(manifests) -> dict:
    return only(manifests, "ray-job.train.yaml", "RayJob")


@pytest.fixture(scope="session")
def serve_config() -> dict:
    return load()


@pytest.fixture(scope="session")
def crd_schemas() -> dict[str, dict]:
    """{kind: the v1 openAPIV3Schema} of the KubeRay CRDs that $KUBERAY_CRDS points at."""
    where = os.environ.get("KUBERAY_CRDS")
    if not where:
        # A user's clone has no ../shared: these checks are optional there (CI always runs them).
        pytest.skip(CRDS_MISSING)
    folder = Path(where)
    # Named explicitly but absent is a mistake (CI sets it), not a reason to skip.
    assert folder.is_dir(), f"KUBERAY_CRDS={where} is not a folder (cwd {Path.cwd()})"
    schemas = {}
    for kind, name in CRD_FILES.items():
        # The CRDs are 1 MB each: the C loader reads them ten times faster.
        crd = yaml.load((folder / name).read_text(), Loader=FAST_LOADER)
        assert crd["spec"]["names"]["kind"] == kind
        (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        schemas[kind] = v1["schema"]["openAPIV3Schema"]
    return schemas


@pytest.fixture(scope="session")
def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments) pairs, continuation lines joined."""
    instructions, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions



@pytest.fixture(scope="session")
def dockerfile_stages(dockerfile) -> dict[str, list[tuple[str, str]]]:
    """{stage: every instruction that shapes its image}: its parent stage's, then its own from
    its FROM on. "" holds what comes before the first FROM (the global ARGs)."""
    stages, current = {"": []}, ""
    for keyword, args in dockerfile:
        if keyword == "FROM":
            image, _, name = args.partition(" AS ")
            current = name.strip()
            stages[current] = [*stages.get(image.strip(), []), (keyword, args)]
        else:
            stages[current].append((keyword, args))
    return stages
