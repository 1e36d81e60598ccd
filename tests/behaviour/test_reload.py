"""Hot reload through user_config: a new checkpoint swaps in without dropped requests; a bad
one leaves the old model serving and reports the error."""

from __future__ import annotations

import pytest
import requests
import torch

from tests.helpers import Traffic, b64, extra_app, golden, resaved_mnist, wait_until

pytestmark = pytest.mark.ray


def _version(url: str) -> dict:
    return {m["name"]: m for m in requests.get(f"{url}/models", timeout=30).json()}["mnist"]


def test_hot_reload_under_load(base_config, tmp_path):
    new = tmp_path / "mnist_v2.pt"
    new_sha = resaved_mnist(new, note="hot-reload test")
    bad = tmp_path / "broken.pt"
    torch.save({"not": "a checkpoint"}, bad)
    body = {"base64": b64(golden("mnist")[0][0])}

    with extra_app(base_config, "reload", {}) as app:
        old = _version(app.url)["version"]

        def answer() -> tuple[int, str]:
            r = requests.post(f"{app.url}/mnist", json=body, timeout=30)
            return r.status_code, r.json().get("model_version", r.text)

        with Traffic(answer, threads=4) as load:
            results = load.results
            wait_until(lambda: len(results) >= 10, 30, what="traffic before the swap")
            app.update({"Classifier_mnist": {"user_config": {"checkpoint": str(new)}}})
            wait_until(lambda: _version(app.url)["version"] == new_sha[:12], 60, what="swap")
            wait_until(lambda: results and results[-1][1] == new_sha[:12], 30, what="new answers")
            app.update({"Classifier_mnist": {"user_config": {"checkpoint": str(bad)}}})
            wait_until(lambda: _version(app.url)["reload_error"], 60, what="reload error")
        assert _version(app.url)["version"] == new_sha[:12]  # the bad file changed nothing
        assert "broken.pt" in _version(app.url)["reload_error"]

    codes = [code for code, _ in results]
    versions = {v for _, v in results}
    assert codes and set(codes) == {200}, f"{codes.count(200)}/{len(codes)} succeeded"
    assert {old, new_sha[:12]} <= versions
