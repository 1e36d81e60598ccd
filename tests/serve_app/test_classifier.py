"""serve_app/classifier.py without Serve (its batched path needs a replica: test_app.py), and its
version and reload-state gauges, which the alerts in config/monitoring/rules/ read."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest
import torch
from pydantic import ValidationError

from serve_app import classifier as classifier_module
from serve_app.classifier import Classifier
from serve_app.settings import ClassifierConfig, resolve
from tests.helpers import resaved_mnist
from vision_core.registry import MODELS


def new_classifier() -> Classifier:
    """The digit classifier as a replica builds it, without Serve."""
    return Classifier.func_or_class("mnist", str(resolve(MODELS["mnist"].checkpoint)),
                                    chunk_size=64, threads=1)


@pytest.fixture(scope="module")
def classifier():
    return new_classifier()


def test_user_config_is_typed_and_strict(classifier):
    classifier.reconfigure({"max_batch_size": 64, "adaptive_batch_wait": False})
    assert classifier._wait.adaptive is False
    with pytest.raises(ValidationError):
        classifier.reconfigure({"max_batch": 64})  # a typo fails the deploy, loudly
    with pytest.raises(ValueError, match="chunk_size"):
        classifier.reconfigure({"max_batch_size": 8})  # every many-image request would fail
    classifier.reconfigure({})
    assert classifier._wait.wait_s == ClassifierConfig().batch_wait_timeout_s


def test_info_describes_the_model_from_its_checkpoint(classifier):
    info = asyncio.run(classifier.info())
    assert info["style"] == "digit" and info["labels"] == [str(i) for i in range(10)]
    assert len(info["version"]) == 12 and info["checkpoint_sha256"].startswith(info["version"])

class FakeGauge:
    """Records the last value per tag set, as Prometheus would see it."""

    def __init__(self, name: str, description: str = "", tag_keys: tuple = ()):
        self.name, self.tag_keys, self.values = name, tag_keys, {}

    def set(self, value: float, tags: dict) -> None:
        assert set(tags) == set(self.tag_keys), self.name
        self.values[tuple(sorted(tags.items()))] = value


@pytest.fixture
def clf(monkeypatch):
    monkeypatch.setattr(classifier_module, "Gauge", FakeGauge)
    monkeypatch.setattr(classifier_module, "Counter", lambda *a, **k: None)
    monkeypatch.setattr(classifier_module, "Histogram", lambda *a, **k: None)
    return new_classifier()


def served(clf) -> dict[str, float]:
    return {dict(tags)["version"]: value for tags, value in clf._served.values.items()}


def failed(clf) -> float:
    return clf._reload_failed.values[(("model", "mnist"),)]


def test_a_new_replica_reports_its_version_and_no_failure(clf) -> None:
    assert served(clf) == {clf._meta["sha256"][:12]: 1}
    assert failed(clf) == 0


def test_a_failed_swap_sets_the_flag_and_keeps_the_version(clf, tmp_path) -> None:
    old = clf._meta["sha256"][:12]
    bad = tmp_path / "broken.pt"
    torch.save({"not": "a checkpoint"}, bad)
    clf._swap(str(bad))
    assert failed(clf) == 1
    assert served(clf) == {old: 1}


def test_a_good_swap_clears_the_flag_and_retires_the_old_version(clf, tmp_path) -> None:
    old = clf._meta["sha256"][:12]
    clf._swap(str(tmp_path / "missing.pt"))
    assert failed(clf) == 1
    new = tmp_path / "mnist_v2.pt"
    sha = resaved_mnist(new, note="gauge test")
    clf._swap(str(new))
    assert failed(clf) == 0
    assert served(clf) == {old: 0, sha[:12]: 1}


def test_the_gauges_are_set_again_while_the_classifier_lives(clf, monkeypatch) -> None:
    """Ray forgets a gauge not set within two metric reports; a thread sets them anew."""
    monkeypatch.setattr(classifier_module, "GAUGE_REFRESH_S", 0.05)
    before = set(threading.enumerate())
    clf = new_classifier()
    (thread,) = set(threading.enumerate()) - before
    clf._served.values.clear()
    clf._reload_failed.values.clear()
    deadline = time.monotonic() + 10
    while not clf._served.values and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served(clf) == {clf._meta["sha256"][:12]: 1}
    assert failed(clf) == 0
    del clf
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()  # a classifier that is gone stops its thread


def test_info_shows_the_decline_rule_from_the_checkpoint(classifier):
    info = asyncio.run(classifier.info())
    ood = classifier._meta["ood"]
    assert info["out_of_domain"]["method"] == ood["method"]
    assert info["out_of_domain"]["threshold"] == ood["threshold"]
    assert info["declined_message"] == "No digit found"
