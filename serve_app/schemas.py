"""Request and response models: the HTTP contract, shown in /docs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    """`{"base64": "<image>"}` (the seed's contract) or `{"base64": ["<image>", ...]}`."""

    model_config = ConfigDict(extra="forbid")

    base64: str | list[str] = Field(
        description="One base64 image (a data:image/...;base64, prefix is accepted) or a list.")
    return_image: bool = Field(
        False, description="Also return the 28x28 image the model saw, as a base64 PNG.")


class Prediction(BaseModel):
    class_id: int
    label: str
    confidence: float
    probabilities: list[float] = Field(description="10 floats in class order, summing to 1")
    image: str | None = Field(None, description="28x28 PNG (base64) the model saw")


class PredictResponse(Prediction):
    """Answer to a one-image request."""

    model: str
    model_version: str = Field(description="first 12 hex of the checkpoint's sha256")


class BatchResponse(BaseModel):
    """Answer to a many-image request, predictions in request order."""

    model: str
    model_version: str
    predictions: list[Prediction]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ModelInfo(BaseModel):
    name: str
    version: str
    dataset: str
    labels: list[str]
    test_accuracy: float | None
    input: str
    checkpoint_sha256: str
    reload_error: str | None = None


def prediction(probs: list[float], labels: list[str], image: str | None = None) -> dict:
    """One row of probabilities -> the prediction fields (argmax, its label, confidence)."""
    class_id = max(range(len(probs)), key=probs.__getitem__)
    return {"class_id": class_id, "label": labels[class_id], "confidence": probs[class_id],
            "probabilities": probs, **({"image": image} if image is not None else {})}
