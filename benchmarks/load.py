"""A small closed-loop asyncio load generator on aiohttp: C clients, each sending back to back."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np


@dataclass
class Result:
    concurrency: int
    seconds: float
    images_per_request: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @property
    def images_per_s(self) -> float:
        return self.requests_per_s * self.images_per_request

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def row(self) -> dict:
        return {"c": self.concurrency, "req_s": round(self.requests_per_s, 1),
                "img_s": round(self.images_per_s, 1), "p50_ms": round(self.percentile(50), 1),
                "p95_ms": round(self.percentile(95), 1), "p99_ms": round(self.percentile(99), 1),
                "errors": self.errors, "requests": len(self.latencies_ms) + self.errors}


async def _client(session, url, body, headers, deadline, result) -> None:
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                ok = resp.status == 200
        except aiohttp.ClientError:
            ok = False
        if ok:
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
        else:
            result.errors += 1


async def _run(url, body, headers, concurrency, seconds, images) -> Result:
    result = Result(concurrency, seconds, images)
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(_client(session, url, body, headers, deadline, result)
                               for _ in range(concurrency)))
    return result


def run(url: str, body: bytes, concurrency: int, seconds: float, images: int = 1,
        content_type: str = "application/json") -> Result:
    """Closed loop for `seconds`; only completed requests count toward throughput."""
    return asyncio.run(_run(url, body, {"Content-Type": content_type}, concurrency, seconds,
                            images))
