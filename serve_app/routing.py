"""The ingress's side of a rollout: which version answers each image, and what each version did.

Each image draws a number in [0, 1) from its routing key and the candidate's version, and goes to
the candidate when the number is below the candidate's share. The key is the client's
X-Client-Key header when one is sent (a client then meets one version throughout), else the
image's own bytes (the same image always meets the same version). A new candidate draws anew.

About once a second the ingress sends the Rollout deployment what each version did since the
last report, and gets the plan back (rollout.py). A plan that cannot be refreshed for
PLAN_TTL_S is dropped: without a fresh plan every image goes to the stable version.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import defaultdict

import numpy as np
from ray.serve.handle import DeploymentHandle

from serve_app.rollout_rule import Signals

logger = logging.getLogger("ray.serve")
CLIENT_KEY_HEADER = "x-client-key"
REPORT_EVERY_S, PLAN_TTL_S = 1.0, 15.0


def draw(key: bytes, candidate: str) -> float:
    """A number in [0, 1), uniform over keys, fixed for a key and a candidate version."""
    digest = hashlib.sha256(candidate.encode() + b"\0" + key).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def keys_of(blobs: list[bytes], client_key: str | None) -> list[bytes]:
    """The routing key of each image: the client's key for all, or each image's bytes."""
    return [client_key.encode()] * len(blobs) if client_key else list(blobs)


class Router:
    """The plan the ingress follows, and the signals it reports."""

    def __init__(self, rollout: DeploymentHandle | None):
        self.rollout = rollout
        self._plan: dict[str, dict] = {}
        self._plan_at = 0.0
        self._signals: dict[str, dict[str, Signals]] = defaultdict(lambda: defaultdict(Signals))
        self._task: asyncio.Task | None = None
        self._versions: dict[tuple[str, str], str] = {}  # (model, role) -> the version it served
        self._first: asyncio.Task | None = None

    async def start(self) -> None:
        """The reporting loop, on the replica's event loop, started by the first request. Until
        the first plan arrives (briefly), requests wait for it: a new ingress replica follows
        the plan at once, so a client meets the same version whichever replica answers."""
        if self.rollout is None:
            return
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())
            self._first = asyncio.get_running_loop().create_task(self.sync())
        if not self._first.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._first), timeout=2)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            with contextlib.suppress(Exception):  # sync() logs; the loop must outlive errors
                await self.sync()

    async def sync(self) -> None:
        sent, self._signals = self._signals, defaultdict(lambda: defaultdict(Signals))
        body = {m: {role: s.to_dict() for role, s in roles.items()} for m, roles in sent.items()}
        try:
            plan = await asyncio.wait_for(self.rollout.report.remote(body), timeout=5)
        except Exception as err:
            for model, roles in sent.items():  # not lost: sent with the next report
                for role, signals in roles.items():
                    self._signals[model][role].add(signals)
            logger.warning("Ingress: rollout plan not refreshed (%s)", type(err).__name__)
            raise
        self._plan, self._plan_at = plan, time.monotonic()

    def plan(self, model: str) -> dict:
        """The model's current plan; no candidate when the plan is stale."""
        if time.monotonic() - self._plan_at > PLAN_TTL_S:
            return {"state": "unknown", "traffic": 0.0, "candidate": None, "timeout_s": 5.0}
        return self._plan.get(model) or {"state": "none", "traffic": 0.0, "candidate": None,
                                         "timeout_s": 5.0}

    def to_candidate(self, model: str, keys: list[bytes]) -> np.ndarray:
        """Per image, whether the model's candidate answers it."""
        plan = self.plan(model)
        if not plan["candidate"] or plan["traffic"] <= 0:
            return np.zeros(len(keys), bool)
        return np.array([draw(k, plan["candidate"]) < plan["traffic"] for k in keys], bool)

    def answered(self, model: str, role: str, images: int, declined: int, ms: float,
                 version: str) -> None:
        self._signals[model][role].record_call(images, declined, ms)
        self._versions[(model, role)] = version

    def feedback(self, model: str, version: str, right: bool) -> None:
        """A user's verdict on an answer counts for the version that gave it, if that version
        is one side of the model's rollout now."""
        for role in ("stable", "candidate"):
            if self._versions.get((model, role)) == version:
                self._signals[model][role].feedback += 1
                self._signals[model][role].feedback_right += int(right)

    def failed(self, model: str, role: str, images: int) -> None:
        self._signals[model][role].errors += images
