"""vision_core/registry.py: one entry per model, each complete, and the served config lists them."""

from __future__ import annotations

from vision_core.paths import resolve
from vision_core.registry import MODELS, STYLES, by_style, others
from vision_core.serve_config import app, load


def test_every_model_is_complete_and_its_checkpoint_and_export_are_committed() -> None:
    for name, m in MODELS.items():
        assert m.name == name and len(m.labels) == len(set(m.labels)) >= 2
        assert 0 < m.mean < 1 and 0 < m.std < 1 and m.style in STYLES and m.declined_message
        assert resolve(m.checkpoint).is_file(), m.checkpoint
        assert resolve(m.checkpoint).with_suffix(".onnx").is_file(), "make export"


def test_styles_and_others_name_registered_models() -> None:
    for name, m in MODELS.items():
        assert by_style(m.style) is m
        assert name not in others(name) and set(others(name)) | {name} == set(MODELS)


def test_the_served_config_serves_every_registered_model_from_its_checkpoint() -> None:
    served = app(load())["args"]["models"]
    assert {name: spec["checkpoint"] for name, spec in served.items()} == \
        {name: m.checkpoint for name, m in MODELS.items()}
