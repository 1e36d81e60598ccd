"""The application's typed arguments (`args:` in config/serve.yaml), validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ROOT = Path(__file__).resolve().parent.parent


def resolve(path: str | Path) -> Path:
    """Relative paths are relative to the project root, not to whatever the cwd is."""
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


def serve_env() -> dict[str, str]:
    """config/serve.env: Serve's process settings (environment), used wherever Serve runs."""
    lines = (ROOT / "config" / "serve.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


class ModelSpec(BaseModel):
    """One classifier: which checkpoint, and how inputs are canonicalised for it."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str
    style: Literal["digit", "clothing"]


class AppArgs(BaseModel):
    """Defaults mirror config/serve.yaml; unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelSpec] = Field(default_factory=lambda: {
        "mnist": ModelSpec(checkpoint="models/mnist_cnn.pt", style="digit"),
        "fmnist": ModelSpec(checkpoint="models/fmnist_cnn.pt", style="clothing"),
    })
    max_images_per_request: int = Field(256, ge=1)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(4096 * 4096, ge=28 * 28)
    chunk_size: int = Field(64, ge=1)
    api_key_env: str = "VISION_API_KEY"
