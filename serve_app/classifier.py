"""Classifier deployment: one class, bound once per model (digits, clothes) from a spec, and once
more per model as its candidate slot, which serves the version a rollout is trying out.

What a replica serves can change while it runs, without a restart: a hot swap through
`user_config.checkpoint`, a promotion (the stable slot takes the candidate's checkpoint), or a
candidate assigned or withdrawn. The Rollout deployment writes those assignments to the app's
store (store.py); replicas read it every few seconds, so a restarted replica finds them too.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from pathlib import Path

import numpy as np
from ray import serve
from ray.serve.metrics import Counter, Gauge, Histogram

from serve_app import gate, store
from serve_app.batch_wait import AdaptiveWait
from serve_app.metrics import LATENCY_BOUNDS_MS
from serve_app.settings import ClassifierConfig, resolve
from serve_app.store import CANDIDATE, STABLE
from vision_core import onnx_model
from vision_core.decision import ARRAYS, decide
from vision_core.formats import file_sha256, version
from vision_core.imaging import BLANK_CONTRAST, blank
from vision_core.registry import by_style

logger = logging.getLogger("ray.serve")
DEFAULTS = ClassifierConfig()
# Ray's core exports a gauge only in the report interval it was set in (10 s), and its agent
# forgets a series two reports after the last one, so a gauge set once is gone from /metrics
# after ~30 s. The served version is set again this often, from a thread: every health check
# (5 s) was not enough, as health checks slip under load (a CI run found the series missing).
# The same thread reads the slot's assignment, so a promotion reaches every replica this soon.
REFRESH_S = 2.5


def _images_in(chunks: list[np.ndarray]) -> int:
    return sum(len(c) for c in chunks)


def ood_summary(meta: dict) -> dict:
    """What GET /models shows of the checkpoint's decline rule (not the fitted tensors)."""
    ood = meta.get("ood") or {}
    return {"method": ood.get("method", "none: only blank images are declined"),
            "threshold": ood.get("threshold"), "threshold_split": ood.get("threshold_split"),
            "blank_contrast": BLANK_CONTRAST}


@functools.lru_cache(maxsize=16)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    return file_sha256(path)


def sha256_of(path: str) -> str:
    """A checkpoint's sha256, hashed again only when the file changes."""
    st = Path(path).stat()
    return _sha256(path, st.st_mtime_ns, st.st_size)


@serve.deployment
class Classifier:
    """Holds one model; `predict` takes N x 28 x 28 pixel arrays (0-255, white on black)."""

    def __init__(self, name: str, checkpoint: str | None, chunk_size: int, threads: int,
                 role: str = STABLE):
        self.name, self.role = name, role
        self._threads = threads  # AppArgs.classifier_threads
        self._chunk_size = chunk_size  # the largest array the ingress sends in one call
        self._bound = checkpoint  # the app's args (stable); None for a candidate slot
        self._configured: str | None = None  # user_config.checkpoint: a hot swap
        self._store = store.Store(store.app_name())
        self._model = self._meta = self._path = None
        self._reload_error: str | None = None
        self._gate: dict | None = None  # a candidate's verdict at load (gate.py)
        self._switching = threading.Lock()  # reconfigure and the refresh thread switch in turn
        self._predictions = Counter("vision_predictions_total", description="Predictions",
                                    tag_keys=("model", "label"))
        # Ray prefixes `ray_`: ray_vision_declined_total{model,reason}.
        self._declined = Counter("vision_declined_total",
                                 description="Images declined as blank or out of domain",
                                 tag_keys=("model", "reason"))
        self._latency = Histogram("vision_inference_latency_ms",
                                  description="Forward pass time per batch",
                                  boundaries=LATENCY_BOUNDS_MS, tag_keys=("model",))
        # What GET /models reports, as metrics: alerts compare the stable replicas' versions.
        self._served = Gauge("vision_model_info", description="1 for the version this replica serves",
                             tag_keys=("model", "version", "role"))
        self._reload_failed = Gauge("vision_reload_failed", tag_keys=("model",),
                                    description="1 while the last model hot-swap has failed")
        if role == STABLE:  # the stable version must load, or the deploy fails loudly
            path = self._wanted()
            self._model, self._meta = onnx_model.load(path, threads)
            self._path = path
        else:
            self._switch(self._wanted())
        self._publish(previous=None)
        _keep_refreshing(self)
        self.reconfigure({})  # the defaults, until Serve passes the deployment's user_config

    def reconfigure(self, user_config: dict) -> None:
        """Batching knobs and hot model swaps, from user_config, without a restart."""
        config = ClassifierConfig.model_validate(user_config)  # unknown keys fail the deploy
        if config.max_batch_size < self._chunk_size:
            # The ingress splits requests into chunks; the batcher refuses an item larger
            # than its batch, so this setting would fail every many-image request.
            raise ValueError(f"max_batch_size {config.max_batch_size} is below the app's "
                             f"chunk_size {self._chunk_size}")
        if config.checkpoint and self.role == CANDIDATE:
            raise ValueError("a candidate slot serves what the Rollout deployment assigns: "
                             "declare candidates in Rollout's user_config.candidates")
        self._batched.set_max_batch_size(config.max_batch_size)
        self._wait = AdaptiveWait(config.batch_wait_timeout_s, config.adaptive_batch_wait)
        self._batched.set_batch_wait_timeout_s(self._wait.after(requests=1))
        self._configured = config.checkpoint
        self.refresh()

    def _wanted(self) -> str | None:
        """The checkpoint this slot should serve now. A candidate slot: what the Rollout assigned
        (or nothing). The stable slot: its declared checkpoint (a hot swap's, else the app's),
        unless a rollout promoted a candidate over exactly that declared file."""
        if self.role == CANDIDATE:
            assigned = self._store.get(store.slot(self.name, CANDIDATE))
            return assigned and assigned["checkpoint"]
        declared = str(resolve(self._configured)) if self._configured else self._bound
        promoted = self._store.get(store.slot(self.name, STABLE))
        if promoted and Path(declared).is_file() and \
                promoted["replaces"] == version(sha256_of(declared)):
            return promoted["checkpoint"]
        return declared

    def refresh(self) -> None:
        """Serve what the slot should serve now (called on reconfigure and every REFRESH_S)."""
        try:
            wanted = self._wanted()
        except Exception as err:  # the store is unreachable (e.g. the GCS restarts): keep serving
            logger.warning("Classifier %s: assignment unreadable (%s); serving %s", self.name,
                           err, self._path)
            return
        if wanted != self._path:
            self._switch(wanted)

    def _switch(self, path: str | None) -> None:
        with self._switching:
            if self.role == STABLE:
                self._swap(path)
            else:
                self._assign(path)

    def _swap(self, path: str) -> None:
        """Load the new checkpoint fully before switching; a bad one leaves the old serving."""
        try:
            model, meta = onnx_model.load(path, self._threads)
            if meta["labels"] != self._meta["labels"]:
                raise ValueError(f"labels {meta['labels']} differ from the served model's")
            self._probe(model, meta, name=path)
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

    def _assign(self, path: str | None) -> None:
        """A candidate slot takes a new version (it must pass the gate) or none."""
        previous = self.version
        self._model = self._meta = self._gate = None
        self._path = path
        if path is not None:
            try:
                model, meta = onnx_model.load(path, self._threads)
                self._probe(model, meta, name=path)
                assigned = self._store.get(store.slot(self.name, CANDIDATE)) or {}
                verdict = gate.check(model, meta, self.name, assigned.get("gate_margin", 0.03))
            except Exception as err:
                verdict, meta = {"passed": False, "message": f"cannot serve {path}: {err}"}, None
            self._gate = verdict
            try:  # the Rollout deployment reads the verdict here
                self._store.put(store.gate(self.name, sha256_of(path)), verdict)
            except Exception as err:
                logger.warning("Classifier %s: gate verdict not stored (%s)", self.name, err)
            if verdict["passed"]:
                self._model, self._meta = model, meta
            logger.log(logging.INFO if verdict["passed"] else logging.ERROR,
                       "Classifier %s candidate %s: %s", self.name, path, verdict["message"])
        self._publish(previous)

    @property
    def version(self) -> str | None:
        """The served model's version: the first 12 hex of its checkpoint's sha256."""
        return version(self._meta["sha256"]) if self._meta else None

    def _publish(self, previous: str | None) -> None:
        """The served version as 1 (a replaced one as 0, so it stops counting) and the reload state."""
        tags = {"model": self.name, "role": self.role}
        current = self.version
        if previous not in (None, current):
            self._served.set(0, tags={**tags, "version": previous})
        if current is not None:
            self._served.set(1, tags={**tags, "version": current})
        if self.role == STABLE:
            self._reload_failed.set(int(self._reload_error is not None), tags={"model": self.name})

    async def predict(self, pixels: np.ndarray) -> dict | None:
        """vision_core.decision.decide's arrays for N <= chunk_size images, via the dynamic batcher,
        plus the version and labels that answered; None from a candidate slot that serves no
        version now (none assigned yet, or withdrawn): the ingress asks the stable one."""
        if self._model is None:
            return None
        return await self._batched(pixels)

    @serve.batch(max_batch_size=DEFAULTS.max_batch_size,
                 batch_wait_timeout_s=DEFAULTS.batch_wait_timeout_s, batch_size_fn=_images_in)
    async def _batched(self, chunks: list[np.ndarray]) -> list[dict]:
        """One forward pass for every image queued by concurrent requests; the accept decision
        comes from the same pass (vision_core.decision.decide)."""
        # The next batch's wait, from how many requests overlapped in this one (batch_wait.py).
        self._batched.set_batch_wait_timeout_s(self._wait.after(requests=len(chunks)))
        start = time.perf_counter()
        model, meta = self._model, self._meta  # one consistent model for the whole batch
        if model is None:  # withdrawn between predict and this batch
            return [None] * len(chunks)
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
        served = {"version": version(meta["sha256"]), "labels": meta["labels"]}
        return [{**{k: result[k][e - len(c):e] for k in ARRAYS},
                 "reasons": reasons[e - len(c):e], **served}
                for c, e in zip(chunks, ends, strict=True)]

    async def info(self) -> dict:  # async: a sync method would cost a thread hand-off per call
        meta = self._meta
        if meta is None:  # a candidate slot between rollouts, or one whose version failed
            return {"name": self.name, "role": self.role, "version": None,
                    "checkpoint": self._path, "gate": self._gate}
        return {"name": self.name, "role": self.role, "version": self.version,
                "dataset": meta["dataset"], "labels": meta["labels"], "style": meta["style"],
                "test_accuracy": meta.get("test_accuracy"),
                "input": "28x28 grayscale, white on black, pixels 0-255; any PNG/JPEG/GIF/BMP/"
                         "WEBP is canonicalised by the service",
                "checkpoint_sha256": meta["sha256"], "runtime": self._model.runtime,
                "reload_error": self._reload_error, "gate": self._gate,
                "out_of_domain": ood_summary(meta),
                "declined_message": by_style(meta["style"]).declined_message}

    @staticmethod
    def _probe(model, meta: dict, name: str) -> None:
        """One forward pass on a blank image; raises if the model cannot give finite scores."""
        _, out = model.scores(np.zeros((1, 28, 28), np.uint8))
        if out.shape != (1, len(meta["labels"])) or not np.isfinite(out).all():
            raise RuntimeError(f"model {name} gives invalid output (shape {out.shape})")

    def check_health(self) -> None:
        """A tiny forward pass: a replica whose model cannot run is replaced. A candidate slot
        whose version failed the gate reports it here, with the gate's reason."""
        if self._gate is not None and not self._gate["passed"]:
            raise RuntimeError(f"candidate {self._path} for {self.name}: {self._gate['message']}")
        if self._model is not None:
            self._probe(self._model, self._meta, self.name)


def _keep_refreshing(classifier: Classifier) -> None:
    """Every REFRESH_S while the classifier exists: follow its slot's assignment and set its
    gauges again. The thread holds it weakly, so a classifier that is gone (a test's, a stopped
    replica's) ends its thread."""
    ref = weakref.ref(classifier)

    def loop() -> None:
        while True:
            time.sleep(REFRESH_S)
            live = ref()
            if live is None:
                return
            try:
                live.refresh()
                live._publish(previous=None)
            except Exception:  # never let the thread die: the next round tries again
                logger.exception("Classifier %s: refresh failed", live.name)
            del live

    threading.Thread(target=loop, name=f"refresh-{classifier.name}", daemon=True).start()
