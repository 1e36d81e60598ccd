"""POST /feedback: a user's correction of one answer, stored for retraining (training/retrain.py).

A thin router over the ingress's own calls, like the Open Inference Protocol's: the same API
key, the same body and image limits, the same preprocessing as /{model} (the record keeps the
28x28 pixels the model saw). A client may send `per_client_per_minute` corrections a minute
(limits.py); more get 429 with Retry-After. A repeat of the same image, model and label answers
200 with the stored record's id instead of 201. Images and labels are never logged.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from ray.serve.metrics import Counter

from serve_app.errors import ApiError
from serve_app.imaging import b64decode
from serve_app.limits import client_of
from serve_app.parsing import json_of, read_body, validated
from serve_app.schemas import FEEDBACK_RESPONSES, FeedbackRequest, FeedbackResponse
from vision_core.feedback import OUT_OF_DOMAIN

router = APIRouter(tags=["Feedback"])
EXPECTED = ('{"base64": "<image>", "model": "mnist", "model_version": "<12 hex>", '
            '"predicted_label": "7", "label": "1"}')


@functools.cache
def _received() -> Counter:
    return Counter("vision_feedback_total", tag_keys=("model", "right"),
                   description="Feedback received, by model and by whether the model was right")


def _ingress(request: Request) -> Any:
    return request.app.state.ingress


Ingress = Annotated[Any, Depends(_ingress)]


@router.post("/feedback", status_code=201, response_model=FeedbackResponse,
             responses=FEEDBACK_RESPONSES,
             summary="Correct an answer: the image, the answer, and the right label")
async def feedback(request: Request, ingress: Ingress) -> JSONResponse:
    ingress.authorize(request)
    wait = ingress.feedback_limit.wait(client_of(request))
    if wait:
        raise ApiError(429, "too_many_corrections", "too much feedback from this client; retry "
                       f"in {wait} s", retry_after=wait)
    body = await read_body(request, ingress.args.max_body_bytes)
    req: FeedbackRequest = validated(FeedbackRequest, json_of(body), EXPECTED)
    ingress.handle(req.model)  # 404 for an unknown model
    labels = (await ingress.info(req.model))["labels"]
    if req.predicted_label not in labels:
        raise ApiError(422, "unknown_label", f"predicted_label is not one of {req.model}'s "
                                             f"labels {labels}")
    if req.label not in (*labels, OUT_OF_DOMAIN):
        raise ApiError(422, "unknown_label", f"label is not one of {req.model}'s labels "
                                             f"{labels}, nor \"{OUT_OF_DOMAIN}\"")
    pixels, _ = await ingress.prepare(req.model, [b64decode(req.base64)])  # 413/415/422
    record_id, created = await ingress.store_feedback(
        req.model, req.model_version, req.predicted_label, req.label, pixels[0])
    right = req.predicted_label == req.label
    if created:
        _received().inc(tags={"model": req.model, "right": str(right).lower()})
        ingress.router.feedback(req.model, req.model_version, right)
    return JSONResponse({"id": record_id, "stored": created}, status_code=201 if created else 200)
