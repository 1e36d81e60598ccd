"""serve_app/routing.py: the candidate's share is what the plan says, and sticky: by the client's
key, else by the image; a stale plan sends everything to the stable version."""

from __future__ import annotations

import time

import numpy as np
import pytest

from serve_app import routing
from serve_app.routing import Router, draw, keys_of


def router_with(plan: dict) -> Router:
    r = Router(rollout=None)
    r._plan, r._plan_at = plan, time.monotonic()
    return r


CANARY = {"mnist": {"state": "canary", "candidate": "abcdef012345", "traffic": 0.1,
                    "timeout_s": 5.0}}


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_the_share_is_within_two_points_over_2000_images(share) -> None:
    images = [f"image {i}".encode() for i in range(2000)]
    plan = {"mnist": {**CANARY["mnist"], "traffic": share}}
    picked = router_with(plan).to_candidate("mnist", keys_of(images, None))
    assert abs(picked.mean() - share) <= 0.02


def test_the_same_image_or_client_meets_the_same_version() -> None:
    router = router_with(CANARY)
    images = [f"image {i}".encode() for i in range(500)]
    first = router.to_candidate("mnist", keys_of(images, None))
    again = router.to_candidate("mnist", keys_of(list(reversed(images)), None))[::-1]
    assert np.array_equal(first, again) and first.any() and not first.all()
    # A client key puts all of a client's images on one version, whatever the images.
    for client in ("alice", "bob", "carol", "dave"):
        picked = router.to_candidate("mnist", keys_of(images[:50], client))
        assert picked.all() or not picked.any()


def test_a_new_candidate_draws_anew() -> None:
    keys = [f"k{i}".encode() for i in range(1000)]
    a = np.array([draw(k, "aaaaaaaaaaaa") < 0.5 for k in keys])
    b = np.array([draw(k, "bbbbbbbbbbbb") < 0.5 for k in keys])
    assert 0.4 < (a == b).mean() < 0.6  # independent draws agree half the time


def test_no_candidate_without_a_fresh_plan(monkeypatch) -> None:
    keys = [b"x"] * 10
    assert not Router(rollout=None).to_candidate("mnist", keys).any()  # never had a plan
    router = router_with({"mnist": {**CANARY["mnist"], "traffic": 1.0}})
    assert router.to_candidate("mnist", keys).all()
    assert not router.to_candidate("fmnist", keys).any()  # a model without a rollout
    router._plan_at -= routing.PLAN_TTL_S + 1  # the Rollout deployment stopped answering
    assert router.plan("mnist")["state"] == "unknown"
    assert not router.to_candidate("mnist", keys).any()


def test_signals_are_kept_per_model_and_role() -> None:
    router = router_with(CANARY)
    router.answered("mnist", "candidate", images=4, declined=1, ms=3.0, version="c" * 12)
    router.failed("mnist", "candidate", images=2)
    router.answered("mnist", "stable", images=8, declined=0, ms=2.0, version="s" * 12)
    router.feedback("mnist", "c" * 12, right=False)  # a verdict on the candidate's answer
    router.feedback("mnist", "s" * 12, right=True)
    router.feedback("mnist", "o" * 12, right=True)  # an older version: neither side
    got = router._signals["mnist"]
    assert (got["candidate"].answered, got["candidate"].errors, got["candidate"].declined) == \
        (4, 2, 1)
    assert got["stable"].answered == 8 and sum(got["stable"].latency.values()) == 1
    assert (got["candidate"].feedback, got["candidate"].feedback_right) == (1, 0)
    assert (got["stable"].feedback, got["stable"].feedback_right) == (1, 1)
