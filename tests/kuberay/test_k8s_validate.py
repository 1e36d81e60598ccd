"""`make k8s-validate`: the API server's own dry run of kuberay/, or one line saying why not.

No cluster runs here, so a stand-in `kubectl` records what the target asks of a real one.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from vision_core.paths import ROOT


def run_target(tmp_path: Path, context: str, apply: str = "exit 0"
               ) -> tuple[subprocess.CompletedProcess, str]:
    """`make k8s-validate` with a kubectl whose current context and apply answer as given."""
    log = tmp_path / "calls"
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n'
                       f'[ "$1 $2" = "config current-context" ] && {{ {context}; }}\n'
                       f'[ "$1" = apply ] && {{ {apply}; }}\nexit 0\n')
    kubectl.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"}
    proc = subprocess.run(["make", "--no-print-directory", "k8s-validate"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    return proc, log.read_text() if log.exists() else ""


def test_dry_runs_every_manifest_against_the_current_context(tmp_path):
    proc, calls = run_target(tmp_path, "echo minikube; exit 0")
    assert proc.returncode == 0, proc.stderr
    assert "apply --dry-run=server -f kuberay/" in calls.splitlines()
    assert "(context minikube)" in proc.stdout


def test_without_a_context_it_skips_with_one_line(tmp_path):
    proc, calls = run_target(tmp_path, "exit 1")
    assert proc.returncode == 0
    assert proc.stdout.strip().splitlines() == [
        "k8s-validate: skipped: kubectl has no current context "
        "(minikube start, or kubectl config use-context NAME)"]
    assert "apply" not in calls


def test_a_rejected_manifest_fails_the_target(tmp_path):
    proc, calls = run_target(tmp_path, "echo minikube; exit 0", apply="exit 1")
    assert "apply --dry-run=server -f kuberay/" in calls.splitlines()
    assert proc.returncode != 0
