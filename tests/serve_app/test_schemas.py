"""Request/response models and label mapping (no Ray)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serve_app.schemas import PredictRequest, PredictResponse, prediction
from serve_app.settings import AppArgs, ModelSpec
from vision_core.registry import MODELS


def test_request_accepts_one_or_many_images():
    assert PredictRequest.model_validate({"base64": "abc"}).base64 == "abc"
    assert PredictRequest.model_validate({"base64": ["a", "b"]}).base64 == ["a", "b"]


@pytest.mark.parametrize("body", [{}, {"base64": 3}, {"base64": "a", "extra": 1},
                                  {"base64": [1, 2]}, {"image": "a"}])
def test_request_rejects_wrong_shapes(body):
    with pytest.raises(ValidationError):
        PredictRequest.model_validate(body)


def test_prediction_maps_argmax_to_label():
    labels = list(MODELS["fmnist"].labels)
    probs = [0.01] * 10
    probs[9] = 0.91
    pred = prediction(probs, labels)
    assert pred["class_id"] == 9 and pred["label"] == "Ankle boot"
    assert pred["confidence"] == 0.91 and "image" not in pred
    PredictResponse.model_validate({"model": "fmnist", "model_version": "abc", **pred})


def test_app_args_defaults_and_strictness():
    args = AppArgs()
    assert set(args.models) == {"mnist", "fmnist"} and args.max_images_per_request == 256
    with pytest.raises(ValidationError):
        AppArgs.model_validate({"max_images": 3})  # a typo is an error, not ignored
    with pytest.raises(ValidationError):
        # The style comes from the checkpoint: a second source in the config is refused.
        ModelSpec.model_validate({"checkpoint": "x.pt", "style": "digit"})

