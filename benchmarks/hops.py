"""Where a single image's latency goes: one client, one request at a time, route by route.

Each route adds one piece to the one before it, so the differences are the cost of that piece:
  GET /v2/health/live          HAProxy + the ingress (FastAPI), no hop
  GET /v2/models/mnist         + one hop to a classifier replica and back
  POST OIP, one 28x28 tensor   + the batcher and a forward pass
  POST /mnist, 28x28 PNG       + decoding in the ingress (lever 14)
  POST /mnist, 280x280 canvas  + the hop to Preprocess and its work

`python -m benchmarks.hops [--env KEY=VALUE ...]` starts the service from config/serve.yaml,
prints p50/p95 per route twice (the second round is the one to read), and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time

import aiohttp
import numpy as np
from PIL import Image

from benchmarks.bodies import GOLDEN
from benchmarks.servers import SERVE, SERVE_URL, Server
from vision_core.serve_config import serve_env


def routes() -> list[tuple[str, str, str, bytes | None]]:
    digit = next(GOLDEN.glob("mnist_dataset_*"))
    canvas = next(GOLDEN.glob("mnist_canvas_*"))
    pixels = np.asarray(Image.open(digit), np.uint8)
    tensor = {"inputs": [{"name": "input", "datatype": "UINT8", "shape": [1, 28, 28],
                          "data": pixels.ravel().tolist()}]}
    return [
        ("ingress only", "GET", "/v2/health/live", None),
        ("+ hop to a classifier", "GET", "/v2/models/mnist", None),
        ("+ batcher and forward pass", "POST", "/v2/models/mnist/infer",
         json.dumps(tensor).encode()),
        ("/mnist, 28x28 PNG", "POST", "/mnist",
         json.dumps({"base64": base64.b64encode(digit.read_bytes()).decode()}).encode()),
        ("/mnist, 280x280 canvas", "POST", "/mnist",
         json.dumps({"base64": base64.b64encode(canvas.read_bytes()).decode()}).encode()),
    ]


async def probe(session, method: str, url: str, body: bytes | None, n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        async with session.request(method, url, data=body,
                                   headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{method} {url}: {resp.status}")
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


async def run(url: str, n: int) -> None:
    async with aiohttp.ClientSession() as session:
        for round_ in (1, 2):
            for name, method, path, body in routes():
                ms = await probe(session, method, url + path, body, n)
                print(json.dumps({"round": round_, "route": name,
                                  "p50_ms": round(float(np.percentile(ms, 50)), 2),
                                  "p95_ms": round(float(np.percentile(ms, 95)), 2)}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config/serve.yaml")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service")
    p.add_argument("--requests", type=int, default=400, help="per route and round")
    args = p.parse_args()
    env = {**serve_env(), **dict(e.split("=", 1) for e in args.env)}
    probe_body = routes()[3][3]
    server = Server([SERVE, "run", args.config],
                    SERVE_URL, ("/mnist", probe_body), env)
    try:
        asyncio.run(run(server.url, args.requests))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
