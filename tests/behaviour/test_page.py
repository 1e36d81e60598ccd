"""The web page at GET / in a real headless Chromium (Debian's), driven by Playwright.

Screenshots go to test-artifacts/ (git-ignored) only. To refresh the README's picture of the
page, docs/page.png, run this file with UPDATE_DOCS_SCREENSHOT=1:

    UPDATE_DOCS_SCREENSHOT=1 python -m pytest tests/behaviour/test_page.py
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import golden
from vision_core.paths import ROOT

pytestmark = pytest.mark.ray

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STATIC = ROOT / "serve_app" / "static"
ARTIFACTS = ROOT / "test-artifacts"  # git-ignored: screenshots for a person to look at
README_SHOT = ROOT / "docs" / "page.png"  # tracked: rewritten only on request (see above)
TIMEOUT_MS = 30_000  # the first request may wait for cold replicas


def test_page_sources_name_no_outside_url():
    """Offline: no CDN, fonts or scripts from elsewhere; assets come from /static/."""
    html = (STATIC / "index.html").read_text()
    assert 'src="/static/app.js"' in html and 'href="/static/style.css"' in html
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.findall(r"https?://|//[a-z0-9-]+\.[a-z]", text, re.I), name


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless; skipped (not failed) where it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium and chromium-driver "
                    "(.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[dev]')")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # never fetch a browser
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def traffic() -> dict[str, list[str]]:
    """What the page did: every URL it requested and every uncaught script error."""
    return {"urls": [], "errors": []}


@pytest.fixture
def page(browser, serve_url, traffic) -> Iterator:
    """The page as served by the real app, recording its traffic."""
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("request", lambda r: traffic["urls"].append(r.url))
    page.on("pageerror", lambda e: traffic["errors"].append(str(e)))
    page.goto(f"{serve_url}/")  # a browser's Accept: text/html gets the page, not JSON
    yield page
    context.close()


def check_clean(traffic: dict[str, list[str]], serve_url: str) -> None:
    """Nothing left the app's own origin and no script failed."""
    outside = [u for u in traffic["urls"] if not u.startswith((serve_url + "/", "data:"))]
    assert not outside, f"the page fetched from outside its origin: {outside}"
    assert not traffic["errors"], traffic["errors"]


def wait_for_answer(page):
    from playwright.sync_api import expect

    expect(page.get_by_test_id("label")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("error")).to_be_hidden()
    expect(page.get_by_test_id("prob-bar")).to_have_count(10)


def shoot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def draw_stroke(page) -> None:
    """A vertical stroke with the mouse, in steps so that pointermove fires."""
    pad = page.get_by_test_id("pad").bounding_box()
    x, top = pad["x"] + pad["width"] / 2, pad["y"] + 40
    page.mouse.move(x, top)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x, top + 20 * step)
    page.mouse.up()


def labels_of(serve_url: str, model: str) -> list[str]:
    infos = requests.get(f"{serve_url}/models", timeout=30).json()
    return next(m["labels"] for m in infos if m["name"] == model)


def test_draw_a_stroke_and_classify(page, serve_url, traffic):
    draw_stroke(page)
    page.get_by_role("button", name="Classify").click()

    wait_for_answer(page)
    assert page.get_by_test_id("label").inner_text().strip()
    assert re.fullmatch(r"\d+(\.\d)?% sure", page.get_by_test_id("confidence").inner_text())
    assert re.fullmatch(r"\d+", page.get_by_test_id("rtt").inner_text())
    assert page.get_by_test_id("seen").get_attribute("src").startswith("data:image/png;base64,")
    values = [float(b.get_attribute("aria-valuenow"))
              for b in page.get_by_test_id("prob-bar").all()]
    assert abs(sum(values) - 100) < 1.5  # ten rounded percentages
    shoot(page, "page-drawn.png")
    check_clean(traffic, serve_url)


def test_clothes_model_shows_clothing_labels(page, serve_url, traffic):
    labels = labels_of(serve_url, "fmnist")
    path, class_id = golden("fmnist")[0]
    page.get_by_label("Clothes (Fashion-MNIST)").check()
    page.get_by_label("Choose an image file").set_input_files(str(path))
    page.get_by_text(f'Using "{path.name}"').wait_for()
    page.get_by_role("button", name="Classify").click()

    wait_for_answer(page)
    assert page.get_by_test_id("label").inner_text() == labels[class_id]
    assert page.locator(".bars .name").all_inner_texts() == labels
    check_clean(traffic, serve_url)


def test_a_digit_drawn_for_the_clothes_model_is_declined_with_the_reason(page, serve_url,
                                                                         traffic):
    page.get_by_label("Clothes (Fashion-MNIST)").check()
    draw_stroke(page)
    page.get_by_role("button", name="Classify").click()

    wait_for_answer(page)
    assert page.get_by_test_id("label").inner_text() == \
        "This does not look like clothing (a digit?)"
    assert "does not recognise it" in page.get_by_test_id("declined").inner_text()
    check_clean(traffic, serve_url)


def test_auto_sends_a_drawn_digit_to_the_digit_model(page, serve_url, traffic):
    page.get_by_label("Auto (whichever fits)").check()
    draw_stroke(page)
    page.get_by_role("button", name="Classify").click()

    wait_for_answer(page)
    assert page.get_by_test_id("label").inner_text() in labels_of(serve_url, "mnist")
    assert page.get_by_test_id("declined").is_hidden()
    check_clean(traffic, serve_url)


def test_upload_a_golden_digit(page, serve_url, traffic):
    path, class_id = golden("mnist")[0]
    label = labels_of(serve_url, "mnist")[class_id]
    page.get_by_label("Choose an image file").set_input_files(str(path))
    page.get_by_text(f'Using "{path.name}"').wait_for()  # the file has been read
    page.get_by_role("button", name="Classify").click()

    wait_for_answer(page)
    assert page.get_by_test_id("label").inner_text() == label
    assert page.locator(".bars li.top .name").inner_text() == label
    shot = shoot(page, "page.png")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(shot, README_SHOT)  # the README's picture of the page
    check_clean(traffic, serve_url)


def test_the_model_panel_says_when_a_new_version_is_being_tried(browser, serve_url) -> None:
    """GET /models' rollout in words (answered here by the page's own route, as the real one
    would during a rollout)."""
    models = requests.get(f"{serve_url}/models", timeout=30).json()
    for m in models:
        m["rollout"] = {"state": "canary", "candidate": "0123456789ab", "traffic": 0.1,
                        "timeout_s": 5.0}
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.route("**/models", lambda route: route.fulfill(json=models))
    page.goto(f"{serve_url}/")
    info = page.locator("#model-info")
    info.wait_for()
    page.wait_for_function("document.getElementById('model-info').textContent.includes('0123')")
    assert "A new version, 0123456789ab, answers 10% of requests" in info.text_content()
    context.close()


def test_wrong_tell_us_records_the_right_label(page, serve_url, traffic):
    """Every answer offers "Wrong? Tell us" with the model's classes; sending one stores it."""
    draw_stroke(page)
    page.get_by_role("button", name="Classify").click()
    wait_for_answer(page)
    page.get_by_test_id("fix-box").locator("summary").click()
    picker = page.get_by_test_id("fix-label")
    options = picker.locator("option").all_inner_texts()
    assert options[:10] == [str(i) for i in range(10)] and options[10] == "Not a digit at all"
    said = page.get_by_test_id("label").inner_text().strip()
    picker.select_option("3" if said != "3" else "4")
    page.get_by_role("button", name="Send").click()
    status = page.get_by_test_id("fix-status")
    page.wait_for_function("document.querySelector('[data-testid=fix-status]').textContent")
    assert re.fullmatch(r"Thank you: recorded as #\d+\.", status.inner_text()), status.inner_text()
    check_clean(traffic, serve_url)
