"""POST /feedback end to end: a correction is stored once in a real database (the session's
SQLite file, and a real PostgreSQL server), every bad input gets its 4xx, a client is limited,
the API key applies, nothing of an image or a label reaches the logs, and no answered record is
lost when the writer is killed under load."""

from __future__ import annotations

import concurrent.futures as cf
import glob
import os
import signal
import time

import numpy as np
import pytest
import requests

from tests.helpers import (
    TEST_KEY,
    TEST_KEY_ENV,
    alive_replicas,
    b64,
    extra_app,
    feedback_db,
    golden,
    png,
    wait_until,
)
from vision_core import feedback as fb

pytestmark = pytest.mark.ray
IMAGE, TRUTH = golden("mnist")[0]


def body(image: bytes | str = IMAGE, **fields) -> dict:
    text = image if isinstance(image, str) else b64(image)
    return {"base64": text, "model": "mnist", "model_version": version_of(), "predicted_label": "7",
            "label": str(TRUTH), **fields}


def version_of() -> str:
    return "6ce423a01bdf"  # any 12 hex: the version the client was answered by


def random_png(seed: int) -> bytes:
    return png(np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8))


def post(url: str, payload: dict, key: str = "tests", **headers) -> requests.Response:
    return requests.post(f"{url}/feedback", json=payload, timeout=60,
                         headers={"X-Client-Key": key, **headers})


def stored(path_or_url: str) -> list[dict]:
    url = path_or_url if "://" in path_or_url else fb.sqlite_url(path_or_url)
    engine = fb.engine_for(url)
    try:
        return fb.rows(engine, "mnist")
    finally:
        engine.dispose()


def test_a_correction_is_stored_once_with_the_pixels_the_model_saw(serve_url, base_config
                                                                     ) -> None:
    first = post(serve_url, body(random_png(1)))
    assert first.status_code == 201, first.text
    again = post(serve_url, body(random_png(1)))
    assert again.status_code == 200 and again.json() == {"id": first.json()["id"],
                                                          "stored": False}
    other = post(serve_url, body(random_png(1), label=fb.OUT_OF_DOMAIN))
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    rows = {r["id"]: r for r in stored(feedback_db(base_config))}
    row = rows[first.json()["id"]]
    assert (row["predicted"], row["label"]) == ("7", str(TRUTH))
    assert fb.pixels_of(row).shape == (28, 28)


@pytest.mark.parametrize("change, status, code", [
    ({"model": "cifar"}, 404, "unknown_model"),
    ({"label": "eleven"}, 422, "unknown_label"),
    ({"predicted_label": "Sneaker"}, 422, "unknown_label"),
    ({"model_version": "latest"}, 422, "invalid_request"),
    ({"base64": "not base64!"}, 400, "invalid_base64"),
    ({"base64": b64(b"%PDF-1.4 not an image")}, 415, "unsupported_media_type"),
    ({"base64": b64(random_png(7)[:300])}, 422, "corrupt_image"),
    ({"extra": 1}, 422, "invalid_request"),
])
def test_every_bad_input_gets_its_4xx(serve_url, change, status, code) -> None:
    resp = post(serve_url, {**body(), **change})
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


def test_a_body_over_the_limit_and_bad_json_are_refused(serve_url, base_config) -> None:
    limit = base_config["applications"][0]["args"]["max_body_bytes"]
    big = requests.post(f"{serve_url}/feedback", data=b"{" + b" " * limit + b"}", timeout=60,
                        headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    bad = requests.post(f"{serve_url}/feedback", data=b"{not json", timeout=60)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_json"


def test_a_client_over_its_rate_gets_429_and_others_do_not(base_config) -> None:
    with extra_app(base_config, "fb_limited", {},
                   {"feedback": {"per_client_per_minute": 3}}) as app:
        codes = [post(app.url, body(random_png(100 + i)), key="eager").status_code
                 for i in range(4)]
        assert codes == [201, 201, 201, 429]
        late = post(app.url, body(random_png(200)), key="eager")
        assert late.status_code == 429 and int(late.headers["Retry-After"]) >= 1
        assert post(app.url, body(random_png(300)), key="calm").status_code == 201


def test_the_api_key_applies(base_config) -> None:
    with extra_app(base_config, "fb_secured", {}, {"api_key_env": TEST_KEY_ENV}) as app:
        assert post(app.url, body()).status_code == 401
        ok = post(app.url, body(), Authorization=f"Bearer {TEST_KEY}")
        assert ok.status_code == 201, ok.text


def test_postgresql_is_used_when_its_url_is_configured(base_config, postgres_url) -> None:
    env = {"ray_actor_options": {"runtime_env": {"env_vars": {
        "VISION_FEEDBACK_DB_URL": postgres_url}}}}
    with extra_app(base_config, "fb_postgres", {"Feedback": env}) as app:
        resp = post(app.url, body(random_png(400)))
        assert resp.status_code == 201, resp.text
        assert resp.json()["id"] in {r["id"] for r in stored(postgres_url)}


def test_images_and_labels_never_reach_the_logs(serve_url) -> None:
    image = random_png(500)
    marker = b64(image)[40:80]  # a piece of this very image's base64
    assert post(serve_url, body(image, label="3")).status_code == 201
    assert post(serve_url, body(image, label="nope")).status_code == 422  # an error path too
    time.sleep(2)  # log lines are flushed by then
    logs = glob.glob("/tmp/ray/session_latest/logs/**/*", recursive=True)
    for path in (p for p in logs if os.path.isfile(p)):
        with open(path, "rb") as f:
            assert marker.encode() not in f.read(), path


def test_no_answered_record_is_lost_when_the_writer_is_killed_under_load(base_config) -> None:
    """Clients retry a 503 as Retry-After says; every id answered with 201 or 200 is stored,
    and each image is stored once."""
    with extra_app(base_config, "fb_chaos", {}) as app:
        def send(i: int) -> tuple[int, int]:
            for _ in range(40):  # bounded: a restarting writer is back within seconds
                try:
                    r = post(app.url, body(random_png(1000 + i)), key=f"c{i % 7}")
                except requests.RequestException:
                    time.sleep(0.5)
                    continue
                if r.status_code in (201, 200):
                    return r.status_code, r.json()["id"]
                assert r.status_code in (503, 429), r.text  # never a 500
                time.sleep(float(r.headers.get("Retry-After", 1)))
            raise AssertionError(f"image {i} was never stored")

        (writer,) = alive_replicas("fb_chaos", "Feedback").values()
        with cf.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(send, i) for i in range(120)]
            wait_until(lambda: sum(f.done() for f in futures) >= 30, 120, what="30 answers")
            os.kill(writer, signal.SIGKILL)  # the one writer, mid-stream
            answers = [f.result() for f in futures]
        assert alive_replicas("fb_chaos", "Feedback") != {}  # Serve started a new writer
        rows = stored(feedback_db(base_config, "fb_chaos"))
        assert {i for _, i in answers} <= {r["id"] for r in rows}
        assert len(rows) == len({r["image_sha256"] for r in rows}) == 120
