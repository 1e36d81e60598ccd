"""Request and response models: the HTTP contract, shown in /docs."""

from __future__ import annotations

from typing import Literal

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
    accepted: bool = Field(description="false when the model declines the image: the label is "
                                       "then its best guess, not an answer")
    reason: Literal["blank", "out_of_domain"] | None = Field(
        None, description="why it was declined: no ink or object (blank), or not an image of "
                          "the model's kind (out_of_domain); absent when accepted")


VERSION_DOC = ("the version that answered: first 12 hex of its checkpoint's sha256 (while a "
               "candidate is out, images of one request may meet different versions)")


class PredictResponse(Prediction):
    """Answer to a one-image request."""

    model: str
    model_version: str = Field(description=VERSION_DOC)


class BatchPrediction(Prediction):
    """One image of a many-image answer."""

    model_version: str = Field(description=VERSION_DOC)


class BatchResponse(BaseModel):
    """Answer to a many-image request, predictions in request order."""

    model: str
    model_version: str = Field(description="the version that answered most of the images; "
                                           "each prediction names its own")
    predictions: list[BatchPrediction]


class ClassifyPrediction(Prediction):
    """One image's answer from POST /classify: the model it was routed to, if any."""

    model: str | None = Field(description="the model that accepted the image (the one most "
                                          "sure it is of its kind); null when none did")
    model_version: str = Field(description=VERSION_DOC)


class ClassifyResponse(BaseModel):
    """Answer to a many-image POST /classify, predictions in request order."""

    predictions: list[ClassifyPrediction]


class FeedbackRequest(BaseModel):
    """A user's correction of one answer: the image as it was sent to /{model}, the answer's
    model, version and label, and the right label (or "out_of_domain")."""

    model_config = ConfigDict(extra="forbid")

    base64: str = Field(description="the image, as sent to /{model} (a data: URL is accepted)")
    model: str = Field(description="the model that answered, e.g. mnist")
    model_version: str = Field(pattern="^[0-9a-f]{12}$",
                               description="the answer's model_version")
    predicted_label: str = Field(description="the label the answer gave")
    label: str = Field(description="the right label, one of the model's labels, or "
                                   "\"out_of_domain\": not a digit (or not a garment) at all")


class FeedbackResponse(BaseModel):
    id: int = Field(description="the stored record's id")
    stored: bool = Field(description="false when the same image, model and label was already "
                                     "stored: this is that record (HTTP 200, not 201)")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class OutOfDomain(BaseModel):
    """The decline rule, from the checkpoint's metadata."""

    method: str
    threshold: float | None
    threshold_split: str | None = Field(description="the held-out images that chose it")
    blank_contrast: int = Field(description="below this ink contrast (0-255) an image is blank")


class RolloutPlan(BaseModel):
    """What the ingress follows for one model now (the Rollout deployment's plan)."""

    state: Literal["none", "loading", "canary", "promoted", "rolled_back", "rejected",
                   "unknown"] = Field(description="unknown: the plan could not be refreshed, "
                                                  "so every image goes to the stable version")
    candidate: str | None = Field(description="the candidate's version while it gets traffic")
    traffic: float = Field(description="the candidate's share of the model's traffic, 0..1")
    timeout_s: float = Field(description="a candidate slower than this is an error; the "
                                         "stable version answers instead")


class ModelInfo(BaseModel):
    name: str
    version: str
    dataset: str
    labels: list[str]
    style: str = Field(description="how inputs are canonicalised (from the checkpoint)")
    test_accuracy: float | None
    input: str
    checkpoint_sha256: str
    runtime: Literal["onnxruntime"] = Field(
        description="what runs the forward pass: ONNX Runtime, on the checkpoint's export "
                    "(training/export.py)")
    reload_error: str | None = None
    out_of_domain: OutOfDomain
    declined_message: str = Field(description="what clients show instead of a label when this "
                                              "model declines an image")
    rollout: RolloutPlan = Field(description="the model's rollout: GET /rollout has its steps")


def prediction(probs: list[float], labels: list[str], image: str | None = None,
               reason: str | None = None) -> dict:
    """One row of probabilities -> the prediction fields (argmax, its label, confidence, and
    whether the model accepts the image: `reason` is why not)."""
    class_id = max(range(len(probs)), key=probs.__getitem__)
    return {"class_id": class_id, "label": labels[class_id], "confidence": probs[class_id],
            "probabilities": probs, **({"image": image} if image is not None else {}),
            "accepted": reason is None, **({"reason": reason} if reason else {})}


class OipErrorResponse(BaseModel):
    """An error on an Open Inference Protocol route: the protocol's shape plus our code."""

    error: str = Field(description="what went wrong (the protocol's field)")
    code: str = Field(description="a stable machine-readable code, as in REST errors")


# ---- OpenAPI text for what FastAPI cannot infer: bodies read by hand, error answers ----------

REST_ERRORS = {s: {"model": ErrorResponse} for s in (400, 401, 404, 413, 415, 422, 429, 503)}
FEEDBACK_RESPONSES = {200: {"model": FeedbackResponse,
                            "description": "already stored: the existing record"},
                      **REST_ERRORS}
OIP_ERRORS = {s: {"model": OipErrorResponse} for s in (400, 401, 404, 413, 429, 503)}

# The predict routes read their body themselves (JSON or multipart, size-limited while
# streaming), so FastAPI is told what the body looks like.
PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": PredictRequest.model_json_schema()},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                       "return_image": {"type": "boolean"}}}},
}}}
OIP_INFER_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["inputs"],
    "properties": {"id": {"type": "string"}, "inputs": {"type": "array", "items": {
        "type": "object"}}, "outputs": {"type": "array", "items": {"type": "object"}}}}}}}}
