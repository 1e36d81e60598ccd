"""The feedback loop end to end, measured through HTTP on one running service and its Ray cluster.

`python -m benchmarks.feedback_loop [--n 600] [--data-dir data]` (`make feedback-loop`):

1. starts `serve run` on config/serve.yaml (its feedback store in a fresh folder);
2. builds the shifted population (training/shifted.py: digits in styles MNIST under-represents,
   clothes on textured or coloured backgrounds or worn), `--n` images per model, and splits it in
   halves: one is sent as feedback, the other is only ever evaluated;
3. measures accuracy on the evaluated half and on the official test sets, through HTTP;
4. sends the feedback half through POST /feedback, as users would (each image's answer, then its
   right label);
5. runs `training.retrain` for each model as a Ray Train job on the service's own cluster;
6. rolls the candidates out (the Rollout deployment's user_config, through Serve's config API, as
   `serve deploy` does) and drives traffic, with feedback on the candidate's answers, until the
   live decision promotes or rolls back each one;
7. measures the same accuracies again.

Every request is counted; a failed one is reported. Writes benchmarks/results/feedback_loop.json.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from benchmarks.bodies import bodies
from benchmarks.report import RESULTS
from benchmarks.servers import PY, SERVE, SERVE_URL, Server
from training import data, shifted
from training.realistic import encode
from vision_core import feedback as fb
from vision_core import serve_config
from vision_core.paths import ROOT
from vision_core.registry import MODELS

BATCH = 64


class Client:
    """The service, as users reach it: every answer counted, a failure kept with its text."""

    def __init__(self, url: str):
        self.url, self.session = url, requests.Session()
        self.sent, self.failed = 0, []

    def post(self, path: str, body: dict, key: str) -> dict:
        self.sent += 1
        r = self.session.post(self.url + path, json=body, timeout=120,
                              headers={"X-Client-Key": key})
        if r.status_code not in (200, 201):
            self.failed.append(f"{path} {r.status_code} {r.text[:200]}")
            return {}
        return r.json()

    def predict(self, model: str, blobs: list[bytes], key: str = "eval") -> list[dict]:
        out = []
        for i in range(0, len(blobs), BATCH):
            chunk = [base64.b64encode(b).decode() for b in blobs[i:i + BATCH]]
            out += self.post(f"/{model}", {"base64": chunk}, key).get("predictions", [])
        return out

    def accuracy(self, model: str, samples: list[tuple[bytes, int]]) -> float:
        preds = self.predict(model, [b for b, _ in samples])
        return float(np.mean([p["class_id"] == y for p, (_, y) in
                              zip(preds, samples, strict=True)]))

    def correct(self, model: str, blob: bytes, label: str, key: str) -> bool:
        """One user's feedback: the answer to the image, then the right label."""
        image = base64.b64encode(blob).decode()
        answer = self.post(f"/{model}", {"base64": image}, key)
        if not answer:
            return False
        return bool(self.post("/feedback", {
            "base64": image, "model": model, "model_version": answer["model_version"],
            "predicted_label": answer["label"], "label": label}, key))


def official(model: str, data_dir: str) -> list[tuple[bytes, int]]:
    from PIL import Image

    test = data.load_split(model, data_dir, train=False)
    return [(encode(Image.fromarray(a.numpy()), "PNG"), int(y))
            for a, y in zip(test.images, test.labels, strict=True)]


def measure(client: Client, halves: dict, tests: dict) -> dict:
    return {m: {"shifted": client.accuracy(m, halves[m]["evaluated"]),
                "official_test": client.accuracy(m, tests[m])} for m in MODELS}


def rollout_state(client: Client) -> dict:
    return client.session.get(client.url + "/rollout", timeout=30).json()["models"]


def deploy(config: dict) -> None:
    """The config applied to the running service, as `serve deploy` does (Serve's config API)."""
    import ray
    from ray.serve._private.api import serve_start
    from ray.serve.schema import ServeDeploySchema

    ray.init(address="auto", ignore_reinit_error=True, log_to_driver=False)
    schema = ServeDeploySchema.model_validate(config)
    serve_start(http_options=schema.http_options.model_dump()).deploy_apps(schema)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=600, help="shifted images per model (>= 500)")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--traffic", type=float, default=0.5, help="the candidates' share")
    p.add_argument("--timeout", type=float, default=1800, help="for the live decision, s")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="feedback-loop-"))
    config = serve_config.for_host(serve_config.load(), "127.0.0.1")
    app = serve_config.app(config)
    app["args"]["feedback"].update(sqlite_path=str(folder / "feedback.sqlite3"),
                                   per_client_per_minute=100_000)
    path = folder / "serve.yaml"
    path.write_text(serve_config.dump(config))
    env = {**serve_config.serve_env(), "PYTHONPATH": str(ROOT)}
    server = Server([SERVE, "run", str(path)], SERVE_URL, ("/mnist", bodies()["single"][1]), env)
    results: dict = {"n": args.n, "traffic": args.traffic}
    try:
        client = Client(server.url)
        halves, tests = {}, {}
        for m in MODELS:
            population = shifted.population(m, args.n, args.data_dir)
            halves[m] = {"feedback": population[0::2],
                         "evaluated": [(b, y) for b, y, _ in population[1::2]]}
            tests[m] = official(m, args.data_dir)
        results["before"] = measure(client, halves, tests)
        print(json.dumps({"before": results["before"]}), flush=True)
        with ThreadPoolExecutor(4) as pool:
            stored = list(pool.map(
                lambda job: client.correct(job[0], job[1][0], MODELS[job[0]].labels[job[1][1]],
                                           f"user-{job[2] % 50}"),
                [(m, item, i) for m in MODELS for i, item in enumerate(halves[m]["feedback"])]))
        results["feedback_sent"] = {"stored": sum(stored), "of": len(stored)}
        url = fb.sqlite_url(folder / "feedback.sqlite3")
        results["retrain"] = {}
        candidates = {}
        for m in MODELS:
            t0 = time.perf_counter()
            out = subprocess.run([PY, "-m", "training.retrain", m, "--database", url,
                                  "--data-dir", args.data_dir],
                                 cwd=ROOT, capture_output=True, text=True, timeout=3600,
                                 env={**os.environ, "RAY_ADDRESS": "auto"})
            results["retrain"][m] = {"exit": out.returncode, "seconds": round(
                time.perf_counter() - t0), "said": (out.stdout + out.stderr).strip()[-600:]}
            print(json.dumps({m: results["retrain"][m]}), flush=True)
            if out.returncode == 0:
                candidates[m] = {"checkpoint": str(ROOT / "models" / "candidates" /
                                                   Path(MODELS[m].checkpoint).name),
                                 "traffic": args.traffic}
        rolled = copy.deepcopy(config)
        rollout = next(d for d in serve_config.app(rolled)["deployments"]
                       if d["name"] == "Rollout")
        rollout["user_config"]["candidates"] = candidates
        deploy(rolled)
        results["decision"] = drive(client, halves, candidates, args.timeout)
        results["after"] = measure(client, halves, tests)
    finally:
        server.stop()
    results["requests"] = {"sent": client.sent, "failed": len(client.failed),
                           "failures": client.failed[:20]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "feedback_loop.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


def drive(client: Client, halves: dict, candidates: dict, timeout: float) -> dict:
    """Traffic (the evaluated halves, with feedback on each answer: users correcting what they
    see) until every candidate is promoted or rolled back."""
    deadline, states, i = time.monotonic() + timeout, {}, 0
    while time.monotonic() < deadline:
        states = {m: s["state"] for m, s in rollout_state(client).items() if m in candidates}
        if all(s in ("promoted", "rolled_back", "rejected") for s in states.values()):
            break
        for m in candidates:
            blob, y = halves[m]["evaluated"][i % len(halves[m]["evaluated"])]
            client.correct(m, blob, MODELS[m].labels[y], f"live-{i % 97}")
        i += 1
    return {"states": states, "rounds": i, "rollout": rollout_state(client)}


if __name__ == "__main__":
    sys.exit(main())
