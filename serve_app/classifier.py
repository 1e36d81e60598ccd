"""Classifier deployment: one class, bound once per model (digits, clothes) from a spec."""

from __future__ import annotations

import logging
import threading
import time
import weakref

import numpy as np
from ray import serve
from ray.serve.metrics import Counter, Gauge, Histogram

from serve_app.batch_wait import AdaptiveWait
from serve_app.metrics import LATENCY_BOUNDS_MS
from serve_app.settings import ClassifierConfig, resolve
from vision_core import onnx_model
from vision_core.decision import decide
from vision_core.formats import version
from vision_core.imaging import BLANK_CONTRAST, blank
from vision_core.registry import by_style

logger = logging.getLogger("ray.serve")
DEFAULTS = ClassifierConfig()
# Ray's core exports a gauge only in the report interval it was set in (10 s), and its agent
# forgets a series two reports after the last one, so a gauge set once is gone from /metrics
# after ~30 s. The served version is set again this often, from a thread: every health check
# (5 s) was not enough, as health checks slip under load (a CI run found the series missing).
GAUGE_REFRESH_S = 2.5

# The per-image arrays of vision_core.decision.decide that predict passes on.
DECISION_ARRAYS = ("probabilities", "accepted", "margin")


def _images_in(chunks: list[np.ndarray]) -> int:
    return sum(len(c) for c in chunks)


def ood_summary(meta: dict) -> dict:
    """What GET /models shows of the checkpoint's decline rule (not the fitted tensors)."""
    ood = meta.get("ood") or {}
    return {"method": ood.get("method", "none: only blank images are declined"),
            "threshold": ood.get("threshold"), "threshold_split": ood.get("threshold_split"),
            "blank_contrast": BLANK_CONTRAST}


@serve.deployment
class Classifier:
    """Holds one model; `predict` takes N x 28 x 28 pixel arrays (0-255, white on black)."""

    def __init__(self, name: str, checkpoint: str, chunk_size: int, threads: int):
        self._threads = threads  # AppArgs.classifier_threads
        self.name = name
        self._chunk_size = chunk_size  # the largest array the ingress sends in one call
        self._path = checkpoint
        self._model, self._meta = onnx_model.load(checkpoint, self._threads)
        self._reload_error: str | None = None
        self._predictions = Counter("vision_predictions_total", description="Predictions",
                                    tag_keys=("model", "label"))
        # Ray prefixes `ray_`: ray_vision_declined_total{model,reason}.
        self._declined = Counter("vision_declined_total",
                                 description="Images declined as blank or out of domain",
                                 tag_keys=("model", "reason"))
        self._latency = Histogram("vision_inference_latency_ms",
                                  description="Forward pass time per batch",
                                  boundaries=LATENCY_BOUNDS_MS, tag_keys=("model",))
        # What GET /models reports, as metrics: alerts compare replicas (config/monitoring/).
        self._served = Gauge("vision_model_info", description="1 for the version this replica serves",
                             tag_keys=("model", "version"))
        self._reload_failed = Gauge("vision_reload_failed", tag_keys=("model",),
                                    description="1 while the last model hot-swap has failed")
        self._publishing = threading.Lock()  # a swap and the refresh thread publish in turn
        self._publish(previous=None)
        _keep_publishing(self)
        self.reconfigure({})  # the defaults, until Serve passes the deployment's user_config

    def reconfigure(self, user_config: dict) -> None:
        """Batching knobs and hot model swaps, from user_config, without a restart."""
        config = ClassifierConfig.model_validate(user_config)  # unknown keys fail the deploy
        if config.max_batch_size < self._chunk_size:
            # The ingress splits requests into chunks; the batcher refuses an item larger
            # than its batch, so this setting would fail every many-image request.
            raise ValueError(f"max_batch_size {config.max_batch_size} is below the app's "
                             f"chunk_size {self._chunk_size}")
        self._batched.set_max_batch_size(config.max_batch_size)
        self._wait = AdaptiveWait(config.batch_wait_timeout_s, config.adaptive_batch_wait)
        self._batched.set_batch_wait_timeout_s(self._wait.after(requests=1))
        wanted = str(resolve(config.checkpoint)) if config.checkpoint else self._path
        if wanted != self._path:
            self._swap(wanted)

    def _swap(self, path: str) -> None:
        """Load the new checkpoint fully before switching; a bad one leaves the old serving."""
        try:
            model, meta = onnx_model.load(path, self._threads)
            if meta["labels"] != self._meta["labels"]:
                raise ValueError(f"labels {meta['labels']} differ from the served model's")
            self._probe(model, name=path)
        except Exception as err:
            self._reload_error = f"reload of {path} failed, still serving " \
                                 f"{self.version}: {err}"
            logger.error("Classifier %s: %s", self.name, self._reload_error)
            self._publish(previous=None)
            return
        previous = self.version
        self._model, self._meta, self._path, self._reload_error = model, meta, path, None
        self._publish(previous)
        logger.info("Classifier %s now serves %s (%s)", self.name, path, self.version)

    @property
    def version(self) -> str:
        """The served model's version: the first 12 hex of its checkpoint's sha256."""
        return version(self._meta["sha256"])

    def _publish(self, previous: str | None) -> None:
        """The served version as 1 (a replaced one as 0, so it stops counting) and the reload state."""
        with self._publishing:
            version = self.version
            if previous not in (None, version):
                self._served.set(0, tags={"model": self.name, "version": previous})
            self._served.set(1, tags={"model": self.name, "version": version})
            self._reload_failed.set(int(self._reload_error is not None), tags={"model": self.name})

    async def predict(self, pixels: np.ndarray) -> dict:
        """vision_core.decision.decide's arrays for N <= chunk_size images, via the dynamic batcher,
        plus the served version and labels."""
        out = await self._batched(pixels)
        return {**out, "version": self.version, "labels": self._meta["labels"]}

    @serve.batch(max_batch_size=DEFAULTS.max_batch_size,
                 batch_wait_timeout_s=DEFAULTS.batch_wait_timeout_s, batch_size_fn=_images_in)
    async def _batched(self, chunks: list[np.ndarray]) -> list[dict]:
        """One forward pass for every image queued by concurrent requests; the accept decision
        comes from the same pass (vision_core.decision.decide)."""
        # The next batch's wait, from how many requests overlapped in this one (batch_wait.py).
        self._batched.set_batch_wait_timeout_s(self._wait.after(requests=len(chunks)))
        start = time.perf_counter()
        model, meta = self._model, self._meta  # one consistent model for the whole batch
        pixels = np.concatenate(chunks)
        result = decide(meta, *model.scores(pixels), blank(pixels))
        self._latency.observe((time.perf_counter() - start) * 1000, tags={"model": self.name})
        kept = result["probabilities"][result["accepted"]].argmax(1)
        for class_id, count in zip(*np.unique(kept, return_counts=True), strict=True):
            self._predictions.inc(int(count), tags={"model": self.name,
                                                    "label": meta["labels"][class_id]})
        reasons = result["reasons"]
        for reason in set(reasons) - {None}:
            self._declined.inc(reasons.count(reason), tags={"model": self.name, "reason": reason})
        ends = np.cumsum([len(c) for c in chunks]).tolist()
        return [{**{k: result[k][e - len(c):e] for k in DECISION_ARRAYS},
                 "reasons": reasons[e - len(c):e]} for c, e in zip(chunks, ends, strict=True)]

    async def info(self) -> dict:  # async: a sync method would cost a thread hand-off per call
        meta = self._meta
        return {"name": self.name, "version": self.version, "dataset": meta["dataset"],
                "labels": meta["labels"], "style": meta["style"],
                "test_accuracy": meta.get("test_accuracy"),
                "input": "28x28 grayscale, white on black, pixels 0-255; any PNG/JPEG/GIF/BMP/"
                         "WEBP is canonicalised by the service",
                "checkpoint_sha256": meta["sha256"], "runtime": self._model.runtime,
                "reload_error": self._reload_error,
                "out_of_domain": ood_summary(meta),
                "declined_message": by_style(meta["style"]).declined_message}

    def _probe(self, model, name: str) -> None:
        """One forward pass on a blank image; raises if the model cannot give finite scores."""
        _, out = model.scores(np.zeros((1, 28, 28), np.uint8))
        if out.shape != (1, len(self._meta["labels"])) or not np.isfinite(out).all():
            raise RuntimeError(f"model {name} gives invalid output (shape {out.shape})")

    def check_health(self) -> None:
        """A tiny forward pass: a replica whose model cannot run is replaced."""
        self._probe(self._model, self.name)


def _keep_publishing(classifier: Classifier) -> None:
    """Set the classifier's gauges again every GAUGE_REFRESH_S while it exists. The thread holds
    it weakly, so a classifier that is gone (a test's, a stopped replica's) ends its thread."""
    ref = weakref.ref(classifier)

    def loop() -> None:
        while True:
            time.sleep(GAUGE_REFRESH_S)
            live = ref()
            if live is None:
                return
            live._publish(previous=None)
            del live

    threading.Thread(target=loop, name=f"gauges-{classifier.name}", daemon=True).start()
