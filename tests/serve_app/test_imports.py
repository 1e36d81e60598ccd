"""Serving never imports torch: the `serve` image carries none (Dockerfile). Building the app
imports every deployment's module (`serve run`'s build step), and torch would also add 1.6 s to
the cold start of the ingress and preprocessing replicas."""

import json
import subprocess
import sys

from tests.helpers import golden
from vision_core.paths import ROOT

# Every package of serving code: what the `serve` image carries (Dockerfile).
SERVING = ["vision_core", "serve_app"]

# Run in a fresh interpreter where `import torch` fails, as in the serve image: import every
# serving module, build the whole app from config/serve.yaml, then construct its deployments'
# classes in-process (no Ray: Serve's batcher needs a replica) and classify one image with
# each model's runtime.
WITHOUT_TORCH = r"""
import asyncio, importlib, json, pkgutil, sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"no module named {name!r} (blocked: the serve image has none)")

sys.meta_path.insert(0, NoTorch())
try:
    import torch  # noqa: F401
    sys.exit("the blocker failed: torch imported")
except ImportError:
    pass

imported = []
for package in sys.argv[1].split(","):
    root = importlib.import_module(package)
    imported.append(package)
    for module in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(module.name)
        imported.append(module.name)

from serve_app.app import build_app
from serve_app.classifier import Classifier
from serve_app.preprocess import Preprocess
from serve_app.settings import AppArgs, resolve
from vision_core import serve_config
from vision_core.onnx_model import load

args = AppArgs.model_validate(serve_config.app(serve_config.load())["args"])
build_app(args)


async def classify(image: bytes) -> dict:
    pre = Preprocess.func_or_class(args.max_image_pixels)
    out = {}
    for name, spec in args.models.items():
        path = str(resolve(spec.checkpoint))
        # What a replica runs (build_app binds the same arguments).
        clf = Classifier.func_or_class(name, path, args.chunk_size, args.classifier_threads)
        clf.check_health()
        info = await clf.info()
        pixels, _ = await pre.run([image], info["style"])
        model, _ = load(path, 1)  # the forward pass the replica's batcher calls
        _, logits = model.scores(pixels)
        out[name] = {"runtime": info["runtime"], "class_id": int(logits[0].argmax())}
    return out


answer = asyncio.run(classify(open(sys.argv[2], "rb").read()))
print(json.dumps({"imported": imported, "answer": answer}))
"""


def test_serving_runs_where_torch_cannot_be_imported():
    path, label = golden("mnist")[0]
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, ",".join(SERVING), str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"serve_app.app", "serve_app.classifier", "serve_app.ingress",
            "vision_core.onnx_model"} <= set(out["imported"])
    assert {m["runtime"] for m in out["answer"].values()} == {"onnxruntime"}, out["answer"]
    assert out["answer"]["mnist"]["class_id"] == label


def test_building_the_app_does_not_import_torch():
    code = ("import sys, serve_app.app, serve_app.ingress, serve_app.preprocess; "
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
