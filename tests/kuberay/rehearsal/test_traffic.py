"""kuberay/rehearsal/traffic.py: how failures and recovery are counted (pure, no pods)."""

from __future__ import annotations

from kuberay.rehearsal.traffic import Load


def load_with(results: list[tuple[float, bool, str]]) -> Load:
    load = Load(service=None, path="/x", body={})
    load.results = results
    return load


def test_failures_are_counted_exactly_since_a_moment() -> None:
    load = load_with([(0.0, False, "old"), (1.0, True, "200"), (2.0, False, "no ready endpoint"),
                      (3.0, False, "no ready endpoint"), (4.0, True, "200")])
    summary = load.summary(since=1.0)
    assert (summary["requests"], summary["failed"]) == (4, 2)
    assert summary["failure_reasons"] == ["no ready endpoint"]


def test_recovery_is_the_first_success_after_the_last_failure() -> None:
    load = load_with([(10.0, True, ""), (11.0, False, ""), (12.5, True, ""), (13.0, False, ""),
                      (15.0, True, ""), (16.0, True, "")])
    assert load.recovered_after(10.0) == 5.0
    assert load_with([(10.0, True, "")]).recovered_after(10.0) == 0.0
    assert load_with([(10.0, False, "")]).recovered_after(10.0) is None
