"""The requests every benchmark sends, built once from the golden images: (path, body, images per
request, headers) per case, and the same as wrk.run's keyword arguments."""

from __future__ import annotations

import base64
import json

import numpy as np
from PIL import Image

from vision_core.paths import ROOT

GOLDEN = ROOT / "tests" / "golden"


def bodies() -> dict[str, tuple[str, bytes, int, dict[str, str]]]:
    image = next(GOLDEN.glob("mnist_dataset_*")).read_bytes()  # 28 x 28, as in the dataset
    b64 = base64.b64encode(image).decode()
    # A 280 x 280 drawing from the page: the path through the Preprocess deployment.
    canvas = base64.b64encode(next(GOLDEN.glob("mnist_canvas_*")).read_bytes()).decode()
    pixels = np.asarray(Image.open(next(GOLDEN.glob("mnist_dataset_*"))), np.uint8)
    batch = np.tile(pixels.ravel(), 64)
    tensor = {"inputs": [{"name": "input", "datatype": "UINT8", "shape": [64, 28, 28],
                          "data": batch.tolist()}]}
    # The same tensor in Triton's binary extension (what tritonclient sends by default): no
    # JSON numbers to parse, so the nearest any request gets to the compute ceiling.
    header = json.dumps({"inputs": [{"name": "input", "datatype": "UINT8", "shape": [64, 28, 28],
                                     "parameters": {"binary_data_size": batch.size}}]}).encode()
    json_type = {"Content-Type": "application/json"}
    return {  # name: (path, body, images per request, headers)
        "single": ("/mnist", json.dumps({"base64": b64}).encode(), 1, json_type),
        "canvas": ("/mnist", json.dumps({"base64": canvas}).encode(), 1, json_type),
        "batch64": ("/mnist", json.dumps({"base64": [b64] * 64}).encode(), 64, json_type),
        "oip64": ("/v2/models/mnist/infer", json.dumps(tensor).encode(), 64, json_type),
        "oipbin64": ("/v2/models/mnist/infer", header + batch.tobytes(), 64,
                     {"Content-Type": "application/octet-stream",
                      "Inference-Header-Content-Length": str(len(header))}),
    }



def wrk_args(body: bytes, images: int, headers: dict[str, str]) -> dict:
    """One of bodies()'s cases (after its path) as wrk.run's keyword arguments."""
    extra = {k: v for k, v in headers.items() if k != "Content-Type"}
    return dict(body=body, images=images, content_type=headers["Content-Type"], headers=extra)
