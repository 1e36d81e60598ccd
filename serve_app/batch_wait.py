"""How long the classifier's batcher waits for more requests before a forward pass.

Waiting only pays when other requests arrive during the wait. A lone client gains nothing from
it and pays the whole timeout on every request (3 ms of a ~10 ms round trip here). So the
configured wait applies only while requests overlap: the last batch coalesced more than one
request. Under load a batch coalesces several, which switches the wait back on at once
(benchmarks/NOTES.md, lever 11).
"""

from __future__ import annotations


class AdaptiveWait:
    def __init__(self, wait_s: float, adaptive: bool = True):
        if wait_s < 0:
            raise ValueError(f"batch_wait_timeout_s must be >= 0, got {wait_s}")
        self.wait_s = wait_s
        self.adaptive = adaptive

    def after(self, requests: int) -> float:
        """The wait for the next batch, given how many requests the last batch coalesced."""
        if not self.adaptive or requests > 1:
            return self.wait_s
        return 0.0
