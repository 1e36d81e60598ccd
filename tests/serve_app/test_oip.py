"""The Open Inference Protocol: pure encoding tests, then Triton's own HTTP client."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import requests
from PIL import Image

from serve_app import oip
from serve_app.errors import ApiError
from tests.helpers import b64, encode, golden


def dataset_digits(n: int = 4) -> tuple[np.ndarray, list[int]]:
    """Official 28x28 test digits committed as golden files, as raw pixel arrays."""
    picks = [(p, y) for p, y in golden("mnist") if "_dataset_" in p.name][:n]
    return np.stack([np.asarray(Image.open(p)) for p, _ in picks]), [y for _, y in picks]


# ---- pure encoding --------------------------------------------------------------------------

def test_parse_json_tensor_and_outputs_filter():
    doc = {"id": "r1", "inputs": [{"name": "input", "datatype": "UINT8", "shape": [1, 28, 28],
                                   "data": [0] * 784}], "outputs": [{"name": "label"}]}
    parsed = oip.parse_infer(json.dumps(doc).encode(), None, 256)
    assert parsed.pixels.shape == (1, 28, 28) and parsed.outputs == ["label"]
    body = oip.infer_response("mnist", "v", np.eye(10, dtype=np.float32)[[3]],
                              [str(i) for i in range(10)], parsed, np.array([False]))
    assert body["id"] == "r1" and body["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["3"]}]
    parsed.outputs = None  # every output, `accepted` among them
    body = oip.infer_response("mnist", "v", np.eye(10, dtype=np.float32)[[3]],
                              [str(i) for i in range(10)], parsed, np.array([False]))
    assert body["outputs"][-1] == {"name": "accepted", "datatype": "BOOL", "shape": [1],
                                   "data": [False]}


def test_parse_binary_bytes_tensor():
    files = [b"\x89PNGone", b"\x89PNGtwo!"]
    blob = b"".join(struct.pack("<I", len(f)) + f for f in files)
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                                     "parameters": {"binary_data_size": len(blob)}}]}).encode()
    assert oip.parse_infer(header + blob, str(len(header)), 256).images == files


@pytest.mark.parametrize("doc", [
    {},
    {"inputs": []},
    {"inputs": [{"name": "input", "datatype": "INT8", "shape": [1, 28, 28], "data": [0] * 784}]},
    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 28, 28], "data": [0]}]},
    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 28, 28], "data": [0] * 10}]},
    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 28, 28], "data": [999] * 784}]},
    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 28, 28], "data": ["x"] * 784}]},
    {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["%%%"]}]},
    {"inputs": [{"name": "other", "datatype": "FP32", "shape": [1], "data": [1]}]},
    {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["aGk="]}],
     "outputs": [{"name": "nope"}]},
])
def test_bad_requests_are_400(doc):
    with pytest.raises(ApiError) as info:
        oip.parse_infer(json.dumps(doc).encode(), None, 256)
    assert info.value.status == 400


# ---- against the service, with clients nobody here wrote --------------------------------------

@pytest.fixture(scope="module")
def triton(serve_url):
    httpclient = pytest.importorskip("tritonclient.http")
    return httpclient, httpclient.InferenceServerClient(url=serve_url.removeprefix("http://"))


@pytest.mark.ray
def test_triton_client_health_and_metadata(triton):
    _, client = triton
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mnist") and client.is_model_ready("fmnist")
    meta = client.get_model_metadata("mnist")
    assert {i["name"] for i in meta["inputs"]} == {"input", "image"}
    assert {o["name"] for o in meta["outputs"]} == {"probabilities", "class_id", "label",
                                                    "accepted"}
    assert meta["platform"] == "onnxruntime_onnx"  # what the replicas run
    assert meta["outputs"][0]["shape"] == [-1, 10]


@pytest.mark.ray
@pytest.mark.parametrize("binary", [True, False])
def test_triton_client_infers_fp32_tensors(triton, binary):
    httpclient, client = triton
    pixels, labels = dataset_digits(4)
    tensor = httpclient.InferInput("input", [4, 1, 28, 28], "FP32")
    tensor.set_data_from_numpy(pixels.reshape(4, 1, 28, 28).astype(np.float32),
                               binary_data=binary)
    result = client.infer("mnist", [tensor])
    assert result.as_numpy("class_id").tolist() == labels
    assert result.as_numpy("probabilities").shape == (4, 10)
    assert [x.decode() if isinstance(x, bytes) else x
            for x in result.as_numpy("label").tolist()] == [str(y) for y in labels]


@pytest.mark.ray
def test_triton_client_sends_png_files_as_bytes(triton):
    httpclient, client = triton
    files = golden("mnist")[:3]
    tensor = httpclient.InferInput("image", [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array([p.read_bytes() for p, _ in files], dtype=np.object_),
                               binary_data=True)
    result = client.infer("mnist", [tensor])
    assert result.as_numpy("class_id").tolist() == [y for _, y in files]


@pytest.mark.ray
def test_raw_json_uint8_and_base64_bytes(serve_url):
    pixels, labels = dataset_digits(2)
    doc = {"inputs": [{"name": "input", "datatype": "UINT8", "shape": [2, 28, 28],
                       "data": pixels.ravel().tolist()}]}
    out = requests.post(f"{serve_url}/v2/models/mnist/infer", json=doc, timeout=30).json()
    assert {o["name"]: o for o in out["outputs"]}["class_id"]["data"] == labels
    path, label = golden("fmnist")[0]
    doc = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                       "data": [b64(path)]}]}
    out = requests.post(f"{serve_url}/v2/models/fmnist/infer", json=doc, timeout=30).json()
    assert {o["name"]: o for o in out["outputs"]}["class_id"]["data"] == [label]


@pytest.mark.ray
def test_protocol_errors(serve_url):
    bad = requests.post(f"{serve_url}/v2/models/mnist/infer", json={"inputs": []}, timeout=30)
    assert bad.status_code == 400 and isinstance(bad.json()["error"], str)
    missing = requests.get(f"{serve_url}/v2/models/nope", timeout=30)
    assert missing.status_code == 404 and isinstance(missing.json()["error"], str)
    doc = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                       "data": [b64(b"%PDF-1.4")]}]}
    pdf = requests.post(f"{serve_url}/v2/models/mnist/infer", json=doc, timeout=30)
    assert pdf.status_code == 400 and "format" in pdf.json()["error"]


@pytest.mark.ray
def test_v2_errors_keep_their_status_in_the_protocol_shape(serve_url):
    """One error contract: under /v2 every error is {"error": str, "code": str}; limits stay
    413 and unknown models 404 whichever stage found them, malformed input is 400."""
    huge = encode(Image.new("L", (5000, 5000)))  # over the 4096 x 4096 limit, found in Preprocess
    doc = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(huge)]}]}
    cases = {
        "image_too_large": (requests.post(f"{serve_url}/v2/models/mnist/infer", json=doc,
                                          timeout=30), 413),
        "body_too_large": (requests.post(f"{serve_url}/v2/models/mnist/infer",
                                         data=b"{" + b" " * (11 * 2**20) + b"}", timeout=30), 413),
        "unknown_model": (requests.post(f"{serve_url}/v2/models/nope/infer", json=doc,
                                        timeout=30), 404),
        "unknown_version": (requests.get(f"{serve_url}/v2/models/mnist/versions/0", timeout=30),
                            404),
        "not_found": (requests.get(f"{serve_url}/v2/nothing/here", timeout=30), 404),
        "invalid_inference_request": (requests.post(f"{serve_url}/v2/models/mnist/infer",
                                                    json={"inputs": []}, timeout=30), 400),
    }
    for code, (resp, status) in cases.items():
        body = resp.json()
        assert resp.status_code == status, (code, resp.status_code, body)
        assert body["code"] == code and isinstance(body["error"], str) and body["error"], body


@pytest.mark.ray
def test_accepted_output_flags_declined_images(serve_url):
    pixels, _ = dataset_digits(1)
    blank = np.zeros((1, 28, 28), np.uint8)
    doc = {"inputs": [{"name": "input", "datatype": "UINT8", "shape": [2, 28, 28],
                       "data": np.concatenate([pixels, blank]).ravel().tolist()}],
           "outputs": [{"name": "accepted"}]}
    out = requests.post(f"{serve_url}/v2/models/mnist/infer", json=doc, timeout=30).json()
    assert out["outputs"] == [{"name": "accepted", "datatype": "BOOL", "shape": [2],
                               "data": [True, False]}]
