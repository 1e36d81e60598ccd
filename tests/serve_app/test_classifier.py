"""serve_app/classifier.py without Serve (its batched path needs a replica: test_app.py)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from serve_app.classifier import Classifier
from serve_app.settings import ClassifierConfig, resolve


@pytest.fixture(scope="module")
def classifier():
    return Classifier.func_or_class("mnist", str(resolve("models/mnist_cnn.pt")), chunk_size=64)


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
