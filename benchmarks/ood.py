"""What each model declines of the out-of-domain evaluation set (training/ood_eval.py) and keeps
of real inputs, measured through HTTP as a user would send them: every image goes to `/mnist`,
`/fmnist` and `/classify` of a service this script starts with `serve run config/serve.yaml`
(or of `--url`), up to 64 images per request. Writes benchmarks/results/ood.json, the figures
README.md and docs/ood.md show. `--in-process` runs the same code without a service (torch):
quick, for trying detectors.

    python -m benchmarks.ood [--data-dir data] [--n 300] [--url URL | --in-process] [--json]
                             [--golden tests/golden]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from PIL import Image, ImageDraw, ImageFont

from benchmarks.bodies import bodies
from benchmarks.report import RESULTS
from benchmarks.servers import SERVE, SERVE_URL, Server
from training import data
from training.ood_eval import InProcess, evaluate, make
from training.realistic import FONTS, encode
from vision_core.registry import MODELS, others

OUTPUT = RESULTS / "ood.json"


class Http:
    """Answers from a running service: JSON lists of base64 images, a few requests at a time."""

    IMAGES, BYTES, CLIENTS = 64, 6 << 20, 4  # per request (max_body_bytes is 10 MiB)

    def __init__(self, url: str) -> None:
        self.url, self.session = url.rstrip("/"), requests.Session()

    def sha256(self, model: str) -> str:
        """The checkpoint the service serves for `model` (GET /models)."""
        infos = self.session.get(f"{self.url}/models", timeout=30).json()
        return next(i["checkpoint_sha256"] for i in infos if i["name"] == model)

    def _chunks(self, blobs: list[bytes]) -> list[list[bytes]]:
        chunks, size = [[]], 0
        for b in blobs:
            if len(chunks[-1]) == self.IMAGES or size + len(b) * 4 // 3 > self.BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(b)
            size += len(b) * 4 // 3
        return [c for c in chunks if c]

    def _post(self, route: str, chunk: list[bytes]) -> list[dict]:
        body = {"base64": [base64.b64encode(b).decode("ascii") for b in chunk]}
        r = self.session.post(f"{self.url}/{route}", json=body, timeout=120)
        if r.status_code != 200:
            raise RuntimeError(f"/{route} answered {r.status_code}: {r.text[:300]}")
        return r.json()["predictions"]

    def answers(self, route: str, blobs: list[bytes]) -> dict[str, np.ndarray]:
        with ThreadPoolExecutor(self.CLIENTS) as pool:
            preds = [p for part in pool.map(lambda c: self._post(route, c), self._chunks(blobs))
                     for p in part]
        return {"accepted": np.array([p["accepted"] for p in preds]),
                "class_id": np.array([p["class_id"] for p in preds]),
                "model": np.array([p.get("model", route) for p in preds], object)}


def write_golden(folder: Path, data_dir: str) -> None:
    """`declined_<model>_<kind>.png`: one blank, noise, letter and other-dataset image each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    common = {"blank": encode(Image.new("RGBA", (280, 280), (0, 0, 0, 0)), "PNG"),
              "noise": encode(Image.fromarray(np.random.default_rng(7).integers(
                  0, 256, (28, 28), dtype=np.uint8)), "PNG")}
    face = ImageFont.truetype(str(FONTS[0]), 120)
    letter = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(letter).text((100, 100), "K", fill=0, font=face, anchor="mm")
    common["letter"] = encode(letter, "PNG")
    for dataset in MODELS:
        other, *_ = others(dataset)
        data.prepare(other, data_dir)
        split = data.load_split(other, data_dir, train=False)
        common_other = next(make("other", 1, seed=rng.randint(0, 1 << 30), other=split))
        for kind, blob in {**common, "other": common_other}.items():
            (folder / f"declined_{dataset}_{kind}.png").write_bytes(blob)


def started_service() -> Server:
    """`serve run config/serve.yaml`, as `make serve` runs it; stopped by the caller."""
    path, body, _, _ = bodies()["single"]
    return Server([SERVE, "run", "config/serve.yaml"], SERVE_URL, (path, body))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--n", type=int, default=300, help="images per kind")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--url", help="a running service (default: start one, stop it after)")
    how.add_argument("--in-process", action="store_true", help="no HTTP, no service (torch)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--golden", help="also write declined examples here (tests/golden)")
    args = p.parse_args(argv)
    server = None if args.url or args.in_process else started_service()
    try:
        service = InProcess() if args.in_process else Http(args.url or server.url)
        results = evaluate(service, args.n, args.data_dir)
        results["through"] = "in-process" if args.in_process else "HTTP"
    finally:
        if server:
            server.stop()
    if args.golden:
        write_golden(Path(args.golden), args.data_dir)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {OUTPUT}")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
