"""serve_app/settings.py: the typed settings' defaults are config/serve.yaml's values, so code that
builds the app without the file (tests, benchmarks) gets the service that `make serve` runs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serve_app.settings import AppArgs, ClassifierConfig
from vision_core.serve_config import app, load


def test_app_args_defaults_are_the_files_args() -> None:
    args = app(load())["args"]
    assert set(args) == set(AppArgs.model_fields)  # the file sets every one: nothing hidden
    assert AppArgs().model_dump() == AppArgs.model_validate(args).model_dump()


def test_classifier_defaults_are_each_classifiers_user_config() -> None:
    classifiers = [d for d in app(load())["deployments"] if d["name"].startswith("Classifier_")]
    assert classifiers
    for d in classifiers:
        assert set(d["user_config"]) == set(ClassifierConfig.model_fields), d["name"]
        assert ClassifierConfig.model_validate(d["user_config"]) == ClassifierConfig(), d["name"]


def test_unknown_or_invalid_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        AppArgs.model_validate({"max_images_per_requests": 5})  # a typo is not ignored
    with pytest.raises(ValidationError):
        AppArgs.model_validate({"classifier_threads": 0})
    with pytest.raises(ValidationError):
        ClassifierConfig.model_validate({"max_batch_size": 0})
