"""The single entry point: `build_app(args)` composes the deployment graph.

config/serve.yaml (`import_path: serve_app.app:build_app`), the RayService, the tests and the
benchmarks all build the service through this function.
"""

# No `from __future__ import annotations` here: Serve reads the real `AppArgs` annotation to
# validate the yaml `args` into it, and a string annotation would pass a raw dict instead.
from ray.serve import Application

from serve_app.classifier import Classifier
from serve_app.feedback import Feedback
from serve_app.ingress import Ingress
from serve_app.preprocess import Preprocess
from serve_app.rollout import Rollout
from serve_app.settings import AppArgs, resolve
from serve_app.store import CANDIDATE, STABLE


def build_app(args: AppArgs) -> Application:
    """Ingress(Preprocess, per model a stable and a candidate Classifier, Rollout, Feedback):
    one Classifier class, bound per model and per role."""

    def classifier(name: str, checkpoint: str | None, role: str):
        deployment = f"Classifier_{name}" + ("" if role == STABLE else f"_{role}")
        return Classifier.options(name=deployment).bind(
            name, checkpoint, args.chunk_size, args.classifier_threads, role)

    stable = {name: classifier(name, str(resolve(spec.checkpoint)), STABLE)
              for name, spec in args.models.items()}
    candidates = {name: classifier(name, None, CANDIDATE) for name in args.models}
    rollout = Rollout.bind({name: spec.checkpoint for name, spec in args.models.items()},
                           candidates)
    feedback = Feedback.bind(args.feedback.model_dump(), list(args.models))
    return Ingress.bind(Preprocess.bind(args.max_image_pixels), stable, candidates, rollout,
                        feedback, args.model_dump())
