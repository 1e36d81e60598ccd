"""The single entry point: `build_app(args)` composes the deployment graph.

config/serve.yaml (`import_path: serve_app.app:build_app`), the RayService, the tests and the
benchmarks all build the service through this function.
"""

# No `from __future__ import annotations` here: Serve reads the real `AppArgs` annotation to
# validate the yaml `args` into it, and a string annotation would pass a raw dict instead.
from ray.serve import Application

from serve_app.classifier import Classifier
from serve_app.ingress import Ingress
from serve_app.preprocess import Preprocess
from serve_app.settings import AppArgs, resolve


def build_app(args: AppArgs) -> Application:
    """Ingress(Preprocess, {name: Classifier(spec)}): one Classifier class, bound per model."""
    classifiers = {
        name: Classifier.options(name=f"Classifier_{name}").bind(
            name, str(resolve(spec.checkpoint)), args.chunk_size, args.classifier_threads)
        for name, spec in args.models.items()
    }
    return Ingress.bind(Preprocess.bind(args.max_image_pixels), classifiers, args.model_dump())
