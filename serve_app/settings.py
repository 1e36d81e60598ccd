"""Typed settings of the service, validated at start-up and loud when wrong.

`AppArgs` is the application's `args:` in config/serve.yaml; `ClassifierConfig` is each
classifier's `user_config:` (changeable at runtime). The defaults here equal config/serve.yaml's
values (tests/serve_app/test_settings.py proves it), so code that builds the app without that
file gets the same service.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from vision_core.paths import resolve
from vision_core.registry import MODELS

__all__ = ["AppArgs", "ClassifierConfig", "ModelSpec", "resolve"]


class ModelSpec(BaseModel):
    """One classifier. Everything else about the model (labels, normalisation, preprocessing
    style) comes from the checkpoint itself, so serving cannot drift from training."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str


class AppArgs(BaseModel):
    """Unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelSpec] = Field(default_factory=lambda: {
        name: ModelSpec(checkpoint=m.checkpoint) for name, m in MODELS.items()})
    max_images_per_request: int = Field(256, ge=1)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(4096 * 4096, ge=28 * 28)
    # Many-image requests are split into chunks of this size, sent to the classifier
    # concurrently so that several replicas share the work. Each classifier's
    # max_batch_size must be at least this (checked when the classifier is configured).
    chunk_size: int = Field(64, ge=1)
    api_key_env: str = "VISION_API_KEY"
    classifier_threads: int = Field(1, ge=1)


class ClassifierConfig(BaseModel):
    """A classifier's `user_config`: batching knobs and hot model swaps, without a restart."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(128, ge=1, description="images per forward pass")
    batch_wait_timeout_s: float = Field(
        0.003, ge=0, description="how long a batch waits to fill while requests overlap")
    adaptive_batch_wait: bool = Field(
        True, description="no wait for a lone request (false: always wait)")
    checkpoint: str | None = Field(None, description="set to hot-swap the model")
