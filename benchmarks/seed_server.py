"""The seed's architecture as a baseline: one FastAPI + uvicorn process, one image per request.

Same preprocessing and model as the service, loaded once (the seed reloaded it per request;
that would only flatter the comparison). `python -m benchmarks.seed_server --port PORT`
(benchmarks/servers.py starts it on SEED_PORT)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI

from serve_app.imaging import b64decode
from serve_app.schemas import PredictRequest, prediction
from serve_app.settings import AppArgs
from training.model import load_checkpoint, probabilities
from vision_core.formats import version
from vision_core.imaging import prepare
from vision_core.paths import resolve
from vision_core.registry import MODELS

torch.set_num_threads(1)  # the same thread setting as a Classifier replica
MODEL, META = load_checkpoint(resolve(MODELS["mnist"].checkpoint))
MAX_PIXELS = AppArgs().max_image_pixels  # the service's limit
app = FastAPI()


@app.post("/mnist")
def mnist(req: PredictRequest) -> dict:
    pixels = prepare(b64decode(req.base64), META["style"], MAX_PIXELS)[None]
    probs = probabilities(MODEL, META, pixels)[0]
    row = np.round(probs.numpy().astype(np.float64), 6).tolist()
    return {"model": "mnist", "model_version": version(META["sha256"]),
            **prediction(row, META["labels"])}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    uvicorn.run(app, host="127.0.0.1", port=p.parse_args().port, log_level="warning",
                access_log=False)
