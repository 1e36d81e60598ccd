"""The rule that promotes a candidate or rolls it back, on what each version did in the same
window: pure functions of the counts, so every edge case is a unit test
(tests/serve_app/test_rollout_rule.py). The Rollout deployment applies it (rollout.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from serve_app.settings import RolloutConfig

# Latency histogram buckets (ms): geometric, 5% apart, so a p95 read from the counts is within
# 5% of the true one, and counts from several ingress replicas simply add up.
_RATIO, _FIRST_MS, _BUCKETS = 1.05, 0.1, 300  # 0.1 ms .. ~227 s


def bucket(ms: float) -> int:
    if ms <= _FIRST_MS:
        return 0
    return min(_BUCKETS - 1, 1 + int(math.log(ms / _FIRST_MS, _RATIO)))


def bucket_ms(i: int) -> float:
    """The upper edge of bucket i."""
    return _FIRST_MS * _RATIO ** i


@dataclass
class Signals:
    """What one version did over the rollout's window. Counts add up across ingress replicas."""

    answered: int = 0  # images answered by this version
    errors: int = 0  # images whose call to this version failed or timed out (not client errors)
    declined: int = 0  # images this version declined (blank or out of domain)
    latency: dict[int, int] = field(default_factory=dict)  # bucket -> calls
    feedback: int = 0  # labelled corrections and confirmations of this version's answers
    feedback_right: int = 0  # of them, where this version's label was right

    def add(self, other: Signals) -> None:
        self.answered += other.answered
        self.errors += other.errors
        self.declined += other.declined
        self.feedback += other.feedback
        self.feedback_right += other.feedback_right
        for b, n in other.latency.items():
            self.latency[int(b)] = self.latency.get(int(b), 0) + n

    def record_call(self, images: int, declined: int, ms: float) -> None:
        self.answered += images
        self.declined += declined
        b = bucket(ms)
        self.latency[b] = self.latency.get(b, 0) + 1

    def rate(self, part: int) -> float:
        tried = self.answered + self.errors
        return part / tried if tried else 0.0

    @property
    def error_rate(self) -> float:
        return self.rate(self.errors)

    @property
    def decline_rate(self) -> float:
        return self.declined / self.answered if self.answered else 0.0

    def p95_ms(self) -> float | None:
        calls = sum(self.latency.values())
        if not calls:
            return None
        seen, target = 0, math.ceil(0.95 * calls)
        for b in sorted(self.latency):
            seen += self.latency[b]
            if seen >= target:
                return bucket_ms(b)
        return None  # unreachable: the counts sum to calls

    @property
    def accuracy(self) -> float | None:
        return self.feedback_right / self.feedback if self.feedback else None

    def to_dict(self) -> dict:
        return {"answered": self.answered, "errors": self.errors, "declined": self.declined,
                "latency": {str(k): v for k, v in self.latency.items()},
                "feedback": self.feedback, "feedback_right": self.feedback_right}

    @classmethod
    def from_dict(cls, d: dict) -> Signals:
        s = cls(**{k: d.get(k, 0) for k in ("answered", "errors", "declined", "feedback",
                                            "feedback_right")})
        s.latency = {int(k): v for k, v in (d.get("latency") or {}).items()}
        return s

    def summary(self) -> dict:
        """What GET /rollout shows of the window."""
        p95 = self.p95_ms()
        return {"answered": self.answered, "errors": self.errors,
                "error_rate": round(self.error_rate, 4), "decline_rate": round(self.decline_rate, 4),
                "p95_ms": None if p95 is None else round(p95, 1), "feedback": self.feedback,
                "feedback_accuracy": None if self.accuracy is None else round(self.accuracy, 4)}


def verdict(stable: Signals, candidate: Signals, cfg: RolloutConfig) -> tuple[str | None, str]:
    """("promote" | "roll_back" | None while the window is too small, the reason)."""
    if candidate.errors >= cfg.abort_after_errors and candidate.answered < cfg.min_requests:
        return "roll_back", f"{candidate.errors} errors before {cfg.min_requests} answers"
    if candidate.answered < cfg.min_requests:
        return None, f"{candidate.answered} of {cfg.min_requests} answers"
    checks = []
    error_gap = candidate.error_rate - stable.error_rate
    checks.append((error_gap <= cfg.max_error_rate_increase,
                   f"error rate {candidate.error_rate:.2%} vs {stable.error_rate:.2%}"))
    decline_gap = candidate.decline_rate - stable.decline_rate
    checks.append((decline_gap <= cfg.max_decline_rate_increase,
                   f"decline rate {candidate.decline_rate:.2%} vs {stable.decline_rate:.2%}"))
    c95, s95 = candidate.p95_ms(), stable.p95_ms()
    if c95 is not None and s95 is not None:
        checks.append((c95 <= s95 * cfg.max_p95_ratio or c95 - s95 <= cfg.p95_slack_ms,
                       f"p95 {c95:.1f} ms vs {s95:.1f} ms"))
    if candidate.feedback >= cfg.min_feedback and stable.feedback >= cfg.min_feedback:
        checks.append((stable.accuracy - candidate.accuracy <= cfg.max_accuracy_drop,
                       f"feedback accuracy {candidate.accuracy:.2%} vs {stable.accuracy:.2%}"))
    failed = [why for ok, why in checks if not ok]
    if failed:
        return "roll_back", "worse than stable: " + "; ".join(failed)
    return "promote", "within bounds: " + "; ".join(why for _, why in checks)
