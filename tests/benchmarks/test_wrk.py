"""benchmarks/wrk.py against a local server whose answers we know: it counts the 200s as
requests and everything else as errors, and reads latency from wrk's own summary."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from benchmarks import wrk

if missing := wrk.available():
    pytest.skip(f"{missing} (.ci/run installs it)", allow_module_level=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    seen: list[tuple[str, str | None, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.headers["Content-Type"], self.headers["X-Extra"], body))
        status = 200 if self.path == "/ok" else 422
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_posts_the_body_and_counts_successes(url) -> None:
    _Handler.seen.clear()
    result = wrk.run(f"{url}/ok", b'{"base64": "x"}', concurrency=2, seconds=1, images=64,
                     content_type="application/x-test")
    assert result.errors == 0 and result.requests > 0
    assert len(_Handler.seen) >= result.requests  # wrk stops counting at its deadline
    assert set(_Handler.seen) == {("application/x-test", None, b'{"base64": "x"}')}
    row = result.row()
    assert row["img_s"] == pytest.approx(row["req_s"] * 64, rel=0.01)
    assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]


def test_sends_extra_headers(url) -> None:
    _Handler.seen.clear()
    result = wrk.run(f"{url}/ok", b"\x00binary", concurrency=1, seconds=1,
                     content_type="application/octet-stream", headers={"X-Extra": "42"})
    assert result.errors == 0 and result.requests > 0
    assert set(_Handler.seen) == {("application/octet-stream", "42", b"\x00binary")}


def test_error_answers_are_errors_not_requests(url) -> None:
    result = wrk.run(f"{url}/bad", b"{}", concurrency=1, seconds=1.4)
    assert result.requests == 0 and result.errors > 0
