"""Feedback deployment: the one writer of the feedback store (vision_core/feedback.py).

One replica owns the database connection: SQLite allows one writer, and a single writer stores
a repeated correction once. Every record is committed before `add` returns, so an answered
request is never lost, even if the replica is killed right after; a request cut off before the
commit got no answer, and the client's retry stores it (once). Images and labels are never
logged. The store's accuracy per served version is published as a gauge for dashboards.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref

import numpy as np
from ray import serve
from ray.serve.metrics import Gauge

from serve_app.settings import FeedbackSettings
from vision_core import feedback as fb

logger = logging.getLogger("ray.serve")
PUBLISH_S = 10  # the accuracy gauges are read from the database this often


@serve.deployment
class Feedback:
    def __init__(self, settings: dict, models: list[str]):
        self._settings = FeedbackSettings.model_validate(settings)
        self._engine = fb.engine_for(fb.configured_url(self._settings.model_dump()))
        version = fb.migrate(self._engine)  # the schema is brought up to date before any write
        logger.info("Feedback store: %s at schema version %s", self._engine.dialect.name, version)
        self._models = models
        self._accuracy = Gauge("vision_feedback_accuracy", tag_keys=("model", "version"),
                               description="Share of a version's answers that users' feedback "
                                           "says were right")
        _keep_publishing(self)

    async def add(self, model: str, model_version: str, predicted: str, label: str,
                  pixels: np.ndarray) -> tuple[int, bool]:
        """(id, created): committed before it returns."""
        record = fb.Record(model, model_version, predicted, label, pixels)
        return await asyncio.to_thread(fb.add, self._engine, record)

    def publish(self) -> None:
        for model in self._models:
            for version, (n, right) in fb.accuracy_by_version(self._engine, model).items():
                self._accuracy.set(right / n, tags={"model": model, "version": version})

    def check_health(self) -> None:
        """The database answers (a replica that lost it is replaced)."""
        with self._engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")


def _keep_publishing(store: Feedback) -> None:
    """The gauges again every PUBLISH_S while the deployment lives (Ray forgets a gauge not set
    within two metric reports), from a thread that holds it weakly."""
    ref = weakref.ref(store)

    def loop() -> None:
        while True:
            time.sleep(PUBLISH_S)
            live = ref()
            if live is None:
                return
            try:
                live.publish()
            except Exception as err:  # the database is away for now: the next round tries
                logger.warning("Feedback store: accuracy not published (%s)", type(err).__name__)
            del live

    threading.Thread(target=loop, name="feedback-gauges", daemon=True).start()
