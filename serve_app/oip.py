"""Open Inference Protocol (KServe v2 REST) decoding and encoding, so Triton/KServe clients work
unchanged. The routes are in oip_routes.py.

Spec: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
Also reads Triton's binary tensor extension (what `tritonclient.http` sends by default):
https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass

import numpy as np

from serve_app.errors import ApiError
from serve_app.parsing import check_count
from vision_core.imaging import SIDE


def invalid(message: str) -> ApiError:
    """A malformed inference request (errors.py renders it in the protocol's shape)."""
    return ApiError(400, "invalid_inference_request", message)


@dataclass
class Inputs:
    """Either raw pixels for the classifier, or encoded images for preprocessing."""

    pixels: np.ndarray | None = None
    images: list[bytes] | None = None
    request_id: str | None = None
    outputs: list[str] | None = None


OUTPUTS = ("probabilities", "class_id", "label", "accepted")
_DTYPES = {"UINT8": np.uint8, "FP32": np.float32}


def metadata(name: str, version: str, classes: int) -> dict:
    """The model's metadata as the protocol describes it. The platform is what runs it: the
    replicas serve the checkpoint's ONNX export on ONNX Runtime (Triton's name for that)."""
    return {
        "name": name, "versions": [version], "platform": "onnxruntime_onnx",
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [-1, 1, SIDE, SIDE],
             "parameters": {"description": "raw pixels 0-255, white ink on black; UINT8 and "
                                           "shape [N,28,28] are accepted too"}},
            {"name": "image", "datatype": "BYTES", "shape": [-1],
             "parameters": {"description": "encoded image files (PNG, JPEG, ...); in JSON, "
                                           "base64 strings"}},
        ],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]},
            {"name": "class_id", "datatype": "INT64", "shape": [-1]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "accepted", "datatype": "BOOL", "shape": [-1],
             "parameters": {"description": "false for an image the model declined (blank, or "
                                           "not of its kind)"}},
        ],
    }


def _split_binary(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    if header_length is None:
        return _json(body), b""
    try:
        n = int(header_length)
    except ValueError:
        raise invalid("Inference-Header-Content-Length is not an integer") from None
    if not 0 < n <= len(body):
        raise invalid("Inference-Header-Content-Length is outside the body")
    return _json(body[:n]), body[n:]


def _json(raw: bytes) -> dict:
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise invalid("the request is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise invalid("the request needs a non-empty 'inputs' list")
    return doc


def _bytes_elements(blob: bytes) -> list[bytes]:
    """Triton's binary BYTES layout: each element is a 4-byte little-endian length + bytes."""
    out, i = [], 0
    while i < len(blob):
        if i + 4 > len(blob):
            raise invalid("truncated BYTES tensor")
        (n,) = struct.unpack_from("<I", blob, i)
        out.append(blob[i + 4:i + 4 + n])
        i += 4 + n
    if i != len(blob):
        raise invalid("truncated BYTES tensor")
    return out


def _pixels(spec: dict, raw: bytes | None, max_images: int) -> np.ndarray:
    dtype, shape = spec.get("datatype"), spec.get("shape")
    if dtype not in _DTYPES:
        raise invalid(f"input 'input' must be UINT8 or FP32, not {dtype}")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
            and len(shape) in (3, 4) and shape[-2:] == [SIDE, SIDE]
            and (len(shape) == 3 or shape[1] == 1)):
        raise invalid(f"input 'input' must have shape [N,1,28,28] or [N,28,28], not {shape}")
    check_count(shape[0], max_images)
    try:
        if raw is not None:
            arr = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<"))
        else:
            arr = np.asarray(spec.get("data"), dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise invalid("input 'input' data must be a flat or nested list of numbers") from None
    if arr.size != int(np.prod(shape)):
        raise invalid(f"input 'input' has {arr.size} values; shape {shape} needs "
                       f"{int(np.prod(shape))}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
        raise invalid("pixel values must be finite and within 0..255")
    return arr.reshape(shape[0], SIDE, SIDE).astype(np.float32 if dtype == "FP32" else np.uint8)


def _images(spec: dict, raw: bytes | None, max_images: int) -> list[bytes]:
    if spec.get("datatype") != "BYTES":
        raise invalid("input 'image' must be BYTES")
    if raw is not None:
        items = _bytes_elements(raw)
    else:
        data = spec.get("data")
        if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
            raise invalid("input 'image' data must be a list of base64 strings")
        try:
            items = [base64.b64decode(d, validate=True) for d in data]
        except (binascii.Error, ValueError):
            raise invalid("input 'image' holds invalid base64") from None
    check_count(len(items), max_images)
    return items


def parse_infer(body: bytes, header_length: str | None, max_images: int) -> Inputs:
    """A v2 infer request (JSON, or JSON + binary tensors) -> Inputs."""
    doc, binary = _split_binary(body, header_length)
    if len(doc["inputs"]) != 1 or not isinstance(doc["inputs"][0], dict):
        raise invalid("send exactly one input: 'input' (pixels) or 'image' (encoded files)")
    spec = doc["inputs"][0]
    size = (spec.get("parameters") or {}).get("binary_data_size")
    raw = None
    if size is not None:
        if not isinstance(size, int) or size != len(binary):
            raise invalid("binary_data_size does not match the binary part of the body")
        raw = binary
    wanted = [o.get("name") for o in doc.get("outputs") or [] if isinstance(o, dict)]
    unknown = set(wanted) - set(OUTPUTS)
    if unknown:
        raise invalid(f"unknown output(s) {sorted(unknown)}; available: {list(OUTPUTS)}")
    result = Inputs(request_id=doc.get("id") if isinstance(doc.get("id"), str) else None,
                    outputs=wanted or None)
    if spec.get("name") == "input":
        result.pixels = _pixels(spec, raw, max_images)
    elif spec.get("name") == "image":
        result.images = _images(spec, raw, max_images)
    else:
        raise invalid(f"unknown input {spec.get('name')!r}; use 'input' or 'image'")
    return result


def infer_response(name: str, version: str, probs: np.ndarray, labels: list[str],
                   inputs: Inputs, accepted: np.ndarray) -> dict:
    """JSON outputs (always JSON: clients accept it whatever binary outputs they asked for).
    `accepted` is false for an image the model declined (blank, or not of its kind)."""
    n = len(probs)
    class_ids = probs.argmax(1)
    tensors = {
        "probabilities": {"datatype": "FP32", "shape": [n, probs.shape[1]],
                          "data": probs.astype(np.float32).ravel().tolist()},
        "class_id": {"datatype": "INT64", "shape": [n], "data": class_ids.tolist()},
        "label": {"datatype": "BYTES", "shape": [n], "data": [labels[i] for i in class_ids]},
        "accepted": {"datatype": "BOOL", "shape": [n], "data": np.asarray(accepted).tolist()},
    }
    outputs = [{"name": k, **tensors[k]} for k in (inputs.outputs or OUTPUTS)]
    body = {"model_name": name, "model_version": version, "outputs": outputs}
    if inputs.request_id is not None:
        body["id"] = inputs.request_id
    return body
