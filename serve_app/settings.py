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


class FeedbackSettings(BaseModel):
    """Where users' corrections are kept (vision_core/feedback.py) and how often a client may
    send one."""

    model_config = ConfigDict(extra="forbid")

    sqlite_path: str = Field("var/feedback.sqlite3", description="the SQLite file (relative: "
                                                                 "the project's), the default")
    database_url_env: str = Field(
        "VISION_FEEDBACK_DB_URL", description="a variable that, when set, holds the database "
                                              "URL to use instead (PostgreSQL)")
    per_client_per_minute: int = Field(
        30, ge=1, description="corrections a client (X-Client-Key, else its address) may send "
                              "a minute, per ingress replica; more get 429")


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
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)


class ClassifierConfig(BaseModel):
    """A classifier's `user_config`: batching knobs and hot model swaps, without a restart."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(128, ge=1, description="images per forward pass")
    batch_wait_timeout_s: float = Field(
        0.003, ge=0, description="how long a batch waits to fill while requests overlap")
    adaptive_batch_wait: bool = Field(
        True, description="no wait for a lone request (false: always wait)")
    checkpoint: str | None = Field(None, description="set to hot-swap the model")


class CandidateSpec(BaseModel):
    """A candidate version of one model: its checkpoint and the share of traffic it gets."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str
    traffic: float = Field(0.1, ge=0, le=1, description="share of the model's traffic, 0..1")


class RolloutConfig(BaseModel):
    """The Rollout deployment's `user_config`: the candidates out now, and the rule that promotes
    or rolls them back (docs/architecture.md#rolling-out-a-new-model). Changing it is an
    in-place update: no replica restarts."""

    model_config = ConfigDict(extra="forbid")

    candidates: dict[str, CandidateSpec] = Field(
        default_factory=dict, description="model -> its candidate; empty: no rollout")
    min_requests: int = Field(
        500, ge=1, description="images the candidate answers before the decision")
    max_error_rate_increase: float = Field(
        0.01, ge=0, le=1, description="candidate's error rate minus the stable one's, at most")
    max_decline_rate_increase: float = Field(
        0.05, ge=0, le=1, description="candidate's decline rate minus the stable one's, at most")
    max_p95_ratio: float = Field(1.5, ge=1, description="candidate's p95 latency / stable's")
    p95_slack_ms: float = Field(
        20.0, ge=0, description="p95 differences below this are noise, whatever the ratio")
    max_accuracy_drop: float = Field(
        0.0, ge=0, le=1, description="stable's accuracy on labelled feedback minus the "
                                     "candidate's, at most (judged once both have min_feedback)")
    min_feedback: int = Field(
        50, ge=1, description="labelled feedback per version before its accuracy counts")
    abort_after_errors: int = Field(
        20, ge=1, description="candidate errors that roll it back at once, before min_requests")
    gate_margin: float = Field(
        0.03, ge=0, le=1, description="at load, accuracy on the bundled gate set must be at "
                                      "least the checkpoint's recorded test accuracy minus this")
    candidate_timeout_s: float = Field(
        5.0, gt=0, description="a candidate slower than this is an error; stable answers")
