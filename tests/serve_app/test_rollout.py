"""serve_app/rollout.py without Serve: a candidate's declaration is checked at deploy time, its
rollout moves through the gate, the window and the decision, survives a restart, and a promotion
reaches the stable classifier in place. The store is a process-local dict here."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from serve_app import classifier as classifier_module
from serve_app import store
from serve_app.classifier import Classifier
from serve_app.rollout import Rollout
from serve_app.rollout_rule import Signals
from tests.helpers import resaved_mnist
from vision_core.formats import file_sha256, version
from vision_core.paths import resolve
from vision_core.registry import MODELS

MODELS_ARGS = {name: m.checkpoint for name, m in MODELS.items()}


class Slot:
    """A candidate slot's handle: records the calls that keep it warm."""

    def __init__(self) -> None:
        self.calls = 0
        self.info = self

    def remote(self):
        self.calls += 1

        async def answer():
            return {}
        return answer()


@pytest.fixture
def kv(monkeypatch):
    memory = store._MemoryKV()
    monkeypatch.setattr(store, "_backend", lambda: memory)
    return memory


@pytest.fixture(scope="module")
def candidate(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("candidate") / "mnist_v2.pt"
    resaved_mnist(path, note="a candidate")
    return str(path)


def new_rollout() -> Rollout:
    return Rollout.func_or_class(MODELS_ARGS, {name: Slot() for name in MODELS})


def run(coro):
    return asyncio.run(coro)


def declare(rollout: Rollout, checkpoint: str | None, **rule) -> None:
    candidates = {"mnist": {"checkpoint": checkpoint, "traffic": 0.2}} if checkpoint else {}
    run(rollout.reconfigure({"candidates": candidates, "min_requests": 100, **rule}))


def report(rollout: Rollout, stable: Signals | None = None,
           candidate: Signals | None = None) -> dict:
    roles = {"stable": stable or Signals(), "candidate": candidate or Signals()}
    return run(rollout.report({"mnist": {r: s.to_dict() for r, s in roles.items()}}))


def answered(n: int, errors: int = 0) -> Signals:
    s = Signals(errors=errors)
    for _ in range(n):
        s.record_call(1, 0, 5.0)
    return s


def judge(kv, checkpoint: str, passed: bool) -> None:
    """What the candidate slot writes once it loaded the checkpoint and ran the gate."""
    store.Store("local", kv).put(store.gate("mnist", file_sha256(checkpoint)),
                                 {"passed": passed, "message": f"gate {passed}"})


def test_a_good_candidate_goes_through_the_gate_and_is_promoted(kv, candidate) -> None:
    rollout = new_rollout()
    declare(rollout, candidate)
    assert store.Store("local", kv).get(store.slot("mnist", "candidate"))["checkpoint"] \
        == candidate
    plan = report(rollout)
    assert plan["mnist"]["state"] == "loading" and plan["mnist"]["traffic"] == 0
    judge(kv, candidate, passed=True)
    plan = report(rollout)
    assert plan["mnist"] == {"state": "canary", "traffic": 0.2, "timeout_s": 5.0,
                             "candidate": version(file_sha256(candidate))}
    assert plan["fmnist"]["state"] == "none" and plan["fmnist"]["traffic"] == 0
    report(rollout, answered(500), answered(60))
    assert run(rollout.status())["models"]["mnist"]["progress"] == "60 of 100 answers"
    plan = report(rollout, answered(300), answered(40))
    assert plan["mnist"]["state"] == "promoted" and plan["mnist"]["traffic"] == 0
    assert store.Store("local", kv).get(store.slot("mnist", "candidate")) is None
    events = [e["event"] for e in run(rollout.status())["models"]["mnist"]["events"]]
    assert events == ["started", "gate_passed", "promoted"]


def test_the_promotion_reaches_the_stable_classifier_in_place(kv, candidate, monkeypatch
                                                              ) -> None:
    clf = Classifier.func_or_class("mnist", str(resolve(MODELS["mnist"].checkpoint)),
                                   chunk_size=64, threads=1)
    before = clf.version
    rollout = new_rollout()
    declare(rollout, candidate)
    judge(kv, candidate, passed=True)
    report(rollout)
    report(rollout, answered(500), answered(100))
    clf.refresh()  # what its thread does every REFRESH_S
    assert clf._path == candidate and clf.version == version(file_sha256(candidate)) != before
    # The same candidate declared again (a config re-applied): the rollout stays concluded.
    declare(rollout, candidate)
    assert report(rollout)["mnist"]["state"] == "promoted"
    assert rollout._stable_version("mnist") == clf.version


def test_a_candidate_that_fails_the_gate_never_gets_traffic(kv, candidate) -> None:
    rollout = new_rollout()
    declare(rollout, candidate)
    judge(kv, candidate, passed=False)
    plan = report(rollout)
    assert plan["mnist"]["state"] == "rejected" and plan["mnist"]["traffic"] == 0
    assert plan["mnist"]["candidate"] is None
    # Removing it from the config frees the slot; the finished rollout is kept as "last".
    declare(rollout, None)
    assert store.Store("local", kv).get(store.slot("mnist", "candidate")) is None
    shown = run(rollout.status())["models"]["mnist"]
    assert shown["state"] == "none" and shown["last"]["state"] == "rejected"


def test_errors_roll_the_candidate_back_early_and_a_restart_resumes(kv, candidate) -> None:
    rollout = new_rollout()
    declare(rollout, candidate, abort_after_errors=5)
    judge(kv, candidate, passed=True)
    report(rollout)
    report(rollout, answered(50), answered(10, errors=3))
    again = new_rollout()  # the Rollout replica restarted: state and window from the store
    declare(again, candidate, abort_after_errors=5)
    assert run(again.status())["models"]["mnist"]["window"]["candidate"]["errors"] == 3
    plan = report(again, answered(50), answered(1, errors=2))
    assert plan["mnist"]["state"] == "rolled_back"
    assert store.Store("local", kv).get(store.slot("mnist", "candidate")) is None


@pytest.mark.parametrize("problem", ["missing", "no export", "the stable itself",
                                     "another dataset", "unknown model"])
def test_a_bad_declaration_fails_the_deploy_with_the_reason(kv, candidate, tmp_path,
                                                             problem) -> None:
    path, model = str(tmp_path / "x.pt"), "mnist"
    if problem == "no export":
        shutil.copy(candidate, path)
    elif problem == "the stable itself":
        path = str(resolve(MODELS["mnist"].checkpoint))
    elif problem == "another dataset":
        path = str(resolve(MODELS["fmnist"].checkpoint))
    elif problem == "unknown model":
        model = "cifar"
    rollout = new_rollout()
    with pytest.raises(ValueError) as err:
        run(rollout.reconfigure({"candidates": {model: {"checkpoint": path}}}))
    expected = {"missing": "not found", "no export": "has no ONNX export",
                "the stable itself": "is the stable version", "another dataset": "'fmnist'",
                "unknown model": "unknown model 'cifar'"}[problem]
    assert expected in str(err.value)
    assert store.Store("local", kv).get(store.slot("mnist", "candidate")) is None


def test_the_slot_is_kept_warm_while_the_rollout_is_active(kv, candidate, monkeypatch) -> None:
    rollout = new_rollout()
    declare(rollout, candidate)
    report(rollout)
    assert rollout._slots["mnist"].calls == 1 and rollout._slots["fmnist"].calls == 0
    assert classifier_module.REFRESH_S < 5  # a promotion reaches replicas within seconds
