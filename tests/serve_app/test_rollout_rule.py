"""serve_app/rollout_rule.py: the decision's edge cases, on counts alone."""

from __future__ import annotations

import pytest

from serve_app.rollout_rule import Signals, bucket, bucket_ms, verdict
from serve_app.settings import RolloutConfig

CFG = RolloutConfig(min_requests=100, abort_after_errors=10)


def signals(answered: int, errors: int = 0, declined: int = 0, ms: float = 10.0,
            feedback: int = 0, right: int = 0) -> Signals:
    s = Signals(errors=errors, feedback=feedback, feedback_right=right)
    for i in range(answered):
        s.record_call(1, 1 if i < declined else 0, ms)
    return s


def test_no_decision_before_min_requests() -> None:
    assert verdict(signals(1000), signals(99), CFG) == (None, "99 of 100 answers")


def test_a_failing_candidate_is_rolled_back_before_min_requests() -> None:
    decision, why = verdict(signals(1000), signals(5, errors=10), CFG)
    assert decision == "roll_back" and "10 errors" in why
    assert verdict(signals(1000), signals(5, errors=9), CFG)[0] is None


def test_a_candidate_like_the_stable_version_is_promoted() -> None:
    decision, why = verdict(signals(1000, declined=20), signals(100, declined=2), CFG)
    assert decision == "promote" and why.startswith("within bounds")


@pytest.mark.parametrize("candidate, worse", [
    (signals(100, errors=3), "error rate"),                       # 2.9% vs 0%: over 1 point
    (signals(100, declined=10), "decline rate"),                  # 10% vs 2%: over 5 points
    (signals(100, ms=100.0), "p95"),                              # 10x slower and 90 ms more
    (signals(100, feedback=60, right=50), "feedback accuracy"),   # 83% vs 95%
])
def test_each_bound_rolls_a_worse_candidate_back(candidate, worse) -> None:
    stable = signals(1000, declined=20, feedback=100, right=95)
    decision, why = verdict(stable, candidate, CFG)
    assert decision == "roll_back" and worse in why


def test_bounds_are_inclusive_and_lower_is_never_worse() -> None:
    # Exactly one point more errors and five more declines: still within the bounds.
    stable, candidate = signals(1000), signals(100, errors=0, declined=5)
    candidate.errors = 1  # 1 / 101 = 0.99%
    assert verdict(stable, candidate, CFG)[0] == "promote"
    assert verdict(signals(1000, declined=500), signals(100), CFG)[0] == "promote"


def test_p95_differences_within_the_slack_are_noise() -> None:
    # 3x slower but 10 ms more: within p95_slack_ms (20 ms) on a busy node.
    assert verdict(signals(1000, ms=5.0), signals(100, ms=15.0), CFG)[0] == "promote"
    assert verdict(signals(1000, ms=5.0), signals(100, ms=40.0), CFG)[0] == "roll_back"


def test_feedback_counts_only_once_both_versions_have_enough() -> None:
    stable = signals(1000, feedback=100, right=99)
    few = signals(100, feedback=CFG.min_feedback - 1, right=0)
    assert verdict(stable, few, CFG)[0] == "promote"  # too little to judge accuracy
    enough = signals(100, feedback=CFG.min_feedback, right=CFG.min_feedback)
    assert verdict(stable, enough, CFG)[0] == "promote"  # 100% >= 99%


def test_signals_add_up_across_replicas_and_survive_json() -> None:
    a, b = signals(10, errors=1, declined=2, ms=3.0), signals(5, ms=300.0)
    a.add(Signals.from_dict(b.to_dict()))
    assert (a.answered, a.errors, a.declined) == (15, 1, 2)
    assert Signals.from_dict(a.to_dict()) == a
    assert a.p95_ms() == pytest.approx(300, rel=0.05)  # 5 of 15 calls took 300 ms


def test_latency_buckets_are_within_5_percent() -> None:
    for ms in (0.3, 2.0, 17.0, 480.0):
        assert ms <= bucket_ms(bucket(ms)) <= ms * 1.05 + 1e-9
