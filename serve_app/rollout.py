"""Rollout deployment: tries a candidate version of a model on a share of its traffic, then
promotes it or rolls it back by itself, on what both versions did in the same window.

One replica. Its `user_config` (settings.RolloutConfig) declares the candidates, so adding,
changing or removing one is an in-place update: no replica restarts. The candidate runs in its
model's candidate slot (a Classifier bound for that role), which must pass the gate at load
(gate.py) before any traffic reaches it. Every ingress replica reports what each version did
about once a second (`report`) and gets the routing plan back. The state is kept in the app's
store (store.py), so a restarted Rollout replica resumes where it was.

States of a model's rollout: none -> loading -> canary -> promoted | rolled_back, or
loading -> rejected (the gate). docs/architecture.md#rolling-out-a-new-model has the why.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Counter, Gauge

from serve_app import store
from serve_app.rollout_rule import Signals, verdict
from serve_app.settings import CandidateSpec, RolloutConfig, resolve
from vision_core import onnx_model
from vision_core.formats import file_sha256, version

logger = logging.getLogger("ray.serve")
ACTIVE = ("loading", "canary")
TICK_S = 1.0  # how often rollouts advance on their own (the gate's verdict, keeping warm)
KEEP_WARM_S = 10  # a call to the candidate slot this often keeps its replica from scaling to 0
EVENTS_KEPT = 50


def _now() -> float:
    return round(time.time(), 3)


@serve.deployment
class Rollout:
    def __init__(self, models: dict[str, str], slots: dict[str, DeploymentHandle]):
        self._declared = {m: str(resolve(path)) for m, path in models.items()}
        self._slots = slots  # model -> its candidate slot
        self._store = store.Store(store.app_name())
        self._cfg = RolloutConfig()
        self._states = {m: self._store.get(store.rollout(m)) or {"state": "none", "events": []}
                        for m in models}
        self._windows = {m: {role: Signals.from_dict(w) for role, w in
                             (self._states[m].get("window") or {}).items()} for m in models}
        self._warmed_at: dict[str, float] = {}
        self._ticker: asyncio.Task | None = None
        self._events = Counter("vision_rollout_events_total", tag_keys=("model", "event"),
                               description="Steps of model rollouts: started, gate_passed, "
                                           "rejected_at_gate, promoted, rolled_back, removed")
        self._share = Gauge("vision_rollout_traffic_share", tag_keys=("model",),
                            description="Share of the model's traffic its candidate gets now")

    async def reconfigure(self, user_config: dict) -> None:
        """A new declaration: each candidate is checked first, so a bad one fails the deploy
        with the reason and changes nothing."""
        cfg = RolloutConfig.model_validate(user_config)
        found = {m: self._check(m, spec) for m, spec in cfg.candidates.items()}
        self._cfg = cfg
        for m in self._declared:
            self._declare(m, cfg.candidates.get(m), found.get(m))
        self._save()
        if self._ticker is None:  # Serve calls reconfigure on the replica's event loop
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        """Rollouts advance without traffic too: a gate's verdict, keeping the slot warm."""
        while True:
            await asyncio.sleep(TICK_S)
            try:
                for model in self._states:
                    self._advance(model)
                self._save()
            except Exception:  # the store is unreachable for now: the next tick tries again
                logger.exception("Rollout: tick failed")

    def _check(self, model: str, spec: CandidateSpec) -> dict:
        """The candidate's file, version and metadata; ValueError with the reason otherwise."""
        if model not in self._declared:
            raise ValueError(f"candidate for unknown model '{model}'; models: "
                             f"{sorted(self._declared)}")
        path = str(resolve(spec.checkpoint))
        try:
            _, meta = onnx_model.load(path)
        except onnx_model.ModelError as err:
            raise ValueError(f"candidate for {model}: {err}") from None
        stable = self._stable_version(model)
        promoted = self._store.get(store.slot(model, "stable"))
        # A candidate this rollout promoted stays declared until the operator moves it to the
        # stable checkpoint: re-applying that config (or a restart) is not an error.
        if version(meta["sha256"]) == stable and not (promoted and promoted["version"] == stable):
            raise ValueError(f"candidate for {model} is the stable version {stable} itself "
                             f"({spec.checkpoint})")
        if meta.get("dataset") != model:
            raise ValueError(f"candidate for {model} is a {meta.get('dataset')!r} checkpoint")
        return {"checkpoint": path, "sha256": meta["sha256"], "version": version(meta["sha256"]),
                "traffic": spec.traffic, "test_accuracy": meta.get("test_accuracy")}

    def _stable_version(self, model: str) -> str:
        """The version the stable slot serves: a promoted one, or its declared checkpoint's."""
        promoted = self._store.get(store.slot(model, "stable"))
        if promoted and promoted["replaces"] == version(file_sha256(self._declared[model])):
            return promoted["version"]
        return version(file_sha256(self._declared[model]))

    def _declare(self, model: str, spec: CandidateSpec | None, found: dict | None) -> None:
        state = self._states[model]
        current = state.get("candidate")
        if spec is None:
            self._store.delete(store.slot(model, "candidate"))  # a rejected one stays till now
            if state["state"] in ACTIVE:
                self._event(model, "removed", "the candidate was removed from the config")
            if state["state"] != "none":
                self._states[model] = {"state": "none", "last": _summary(state),
                                       "events": state["events"]}
            return
        if current and current["sha256"] == found["sha256"]:
            # The same candidate: a new share applies; a concluded rollout stays concluded.
            current["traffic"] = spec.traffic
            return
        self._states[model] = {
            "state": "loading", "candidate": found, "stable_version": self._stable_version(model),
            "started": _now(), "events": state["events"], "last": _summary(state)}
        self._windows[model] = {"stable": Signals(), "candidate": Signals()}
        # Only a verdict given after this start counts: the slot's replicas must load it anew.
        self._store.delete(store.gate(model, found["sha256"]))
        self._store.put(store.slot(model, "candidate"),
                        {"checkpoint": found["checkpoint"], "gate_margin": self._cfg.gate_margin})
        self._event(model, "started", f"candidate {found['version']} ({found['checkpoint']}) "
                                      f"against {self._states[model]['stable_version']}, "
                                      f"{spec.traffic:.0%} of traffic once it passes the gate")

    async def report(self, signals: dict[str, dict[str, dict]]) -> dict:
        """What an ingress replica saw since its last report (model -> "stable"/"candidate" ->
        Signals); returns the routing plan for every model."""
        for model, roles in signals.items():
            if self._states.get(model, {}).get("state") == "canary":
                for role, counts in roles.items():
                    self._windows[model][role].add(Signals.from_dict(counts))
        for model in self._states:
            self._advance(model)
        self._save()
        return self.plan()

    def plan(self) -> dict:
        out = {}
        for model, state in self._states.items():
            canary = state["state"] == "canary"
            share = state["candidate"]["traffic"] if canary else 0.0
            self._share.set(share, tags={"model": model})
            out[model] = {"state": state["state"], "traffic": share,
                          "candidate": state["candidate"]["version"] if canary else None,
                          "timeout_s": self._cfg.candidate_timeout_s}
        return out

    def _advance(self, model: str) -> None:
        state = self._states[model]
        if state["state"] in ACTIVE:
            self._keep_warm(model)
        if state["state"] == "loading":
            judged = self._store.get(store.gate(model, state["candidate"]["sha256"]))
            if judged is not None:
                state["gate"] = judged
                if judged["passed"]:
                    state["state"] = "canary"
                    self._event(model, "gate_passed", judged["message"])
                else:
                    state["state"] = "rejected"
                    self._event(model, "rejected_at_gate", judged["message"])
        elif state["state"] == "canary":
            window = self._windows[model]
            decision, why = verdict(window["stable"], window["candidate"], self._cfg)
            state["progress"] = why
            if decision == "promote":
                self._promote(model, why)
            elif decision == "roll_back":
                self._store.delete(store.slot(model, "candidate"))
                state["state"] = "rolled_back"
                self._event(model, "rolled_back", why)

    def _promote(self, model: str, why: str) -> None:
        """The stable slot takes the candidate's checkpoint (its replicas swap in place); the
        candidate slot is emptied and scales to zero."""
        state, candidate = self._states[model], self._states[model]["candidate"]
        previous = self._store.get(store.slot(model, "stable"))
        # Stable replicas apply a promotion over their declared file only; a promotion over a
        # promotion still names that file.
        replaces = previous["replaces"] if previous else version(file_sha256(
            self._declared[model]))
        self._store.put(store.slot(model, "stable"), {
            "checkpoint": candidate["checkpoint"], "version": candidate["version"],
            "replaces": replaces})
        self._store.delete(store.slot(model, "candidate"))
        state["state"] = "promoted"
        self._event(model, "promoted", why + f"; update {model}'s checkpoint in "
                                              f"config/serve.yaml to {candidate['checkpoint']}")

    def _keep_warm(self, model: str) -> None:
        """A call to the candidate slot: starts its replica (it scales from zero) and keeps it."""
        if time.monotonic() - self._warmed_at.get(model, 0) < KEEP_WARM_S:
            return
        self._warmed_at[model] = time.monotonic()

        async def ping() -> None:
            try:
                await asyncio.wait_for(self._slots[model].info.remote(), timeout=120)
            except Exception as err:  # a slot that cannot start shows as no gate verdict
                logger.warning("Rollout %s: candidate slot did not answer (%s)", model, err)

        asyncio.get_running_loop().create_task(ping())

    def _event(self, model: str, event: str, detail: str) -> None:
        state = self._states[model]
        state["events"] = [*state["events"], {"t": _now(), "event": event, "detail": detail}]
        state["events"] = state["events"][-EVENTS_KEPT:]
        self._events.inc(tags={"model": model, "event": event})
        logger.info("Rollout %s: %s: %s", model, event, detail)

    def _save(self) -> None:
        """Every model's state and window, after every change (a few small writes a second)."""
        for model, state in self._states.items():
            state["window"] = {role: s.to_dict() for role, s in self._windows[model].items()}
            self._store.put(store.rollout(model), state)

    async def status(self) -> dict:
        """Every model's rollout, as GET /rollout and `vision-ai rollout status` show it."""
        out = {}
        for model, state in self._states.items():
            shown = {k: v for k, v in state.items() if k != "window"}
            shown["window"] = {role: s.summary() for role, s in self._windows[model].items()}
            out[model] = shown
        return {"models": out, "rule": self._cfg.model_dump(exclude={"candidates"})}


def _summary(state: dict) -> dict | None:
    """What is kept of a finished rollout once another starts or the candidate is removed."""
    if state.get("state", "none") == "none":
        return state.get("last")
    return {k: state.get(k) for k in ("state", "candidate", "stable_version", "started")}
