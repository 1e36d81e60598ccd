"""A per-client rate limit (a token bucket per client), for routes a client may not flood.

A client is its X-Client-Key header when sent, else the first X-Forwarded-For address (an
upstream proxy's), else the peer address. Behind Serve's HAProxy the peer is the proxy itself,
so clients without a key share one bucket: the page and `vision-ai` send a key.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from starlette.requests import Request

from serve_app.routing import CLIENT_KEY_HEADER


def client_of(request: Request) -> str:
    key = request.headers.get(CLIENT_KEY_HEADER)
    if key:
        return "key:" + key
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    return "addr:" + (forwarded or (request.client.host if request.client else "unknown"))


class PerClient:
    """At most `per_minute` events a minute per client, as a burst or spread out. Remembers the
    most recent `clients` clients (an idle one is forgotten: it has a full bucket anyway)."""

    def __init__(self, per_minute: int, clients: int = 10_000):
        self.rate, self.burst, self.clients = per_minute / 60.0, float(per_minute), clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def wait(self, client: str, now: float | None = None) -> int:
        """0 when the client may go on (a token is taken), else the seconds to wait."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            wait = 0
        else:
            self._buckets[client] = (tokens, now)
            wait = max(1, math.ceil((1 - tokens) / self.rate))
        while len(self._buckets) > self.clients:
            self._buckets.popitem(last=False)
        return wait
