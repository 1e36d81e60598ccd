"""The `vision-ai` CLI: pure logic and a down service without Ray; the rest against the real app."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import free_port, golden
from vision_client import cli as client
from vision_core.paths import ROOT
from vision_core.registry import MODELS

OK = {"model": "mnist", "model_version": "abc", "class_id": 7, "label": "7",
      "confidence": 0.9876, "probabilities": [0.0] * 10}
UNSUPPORTED = {"file": "notes.png", "error": {"code": "unsupported_media_type",
                                              "message": "not an image in an accepted format"}}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = client.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, contains: str) -> None:
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and contains in err and "Traceback" not in err


def fails_with_one_line(capsys, contains: str, *argv: str) -> None:
    """The run stops with exit code 2, nothing on stdout and one `error:` line on stderr."""
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    one_error_line(err, contains)


# --- without a server ---------------------------------------------------------------------------

def test_parser_defaults_and_api_key_from_env(monkeypatch):
    monkeypatch.setenv("VISION_API_KEY", "s3cret")
    args = client.parser().parse_args(["predict", "a.png"])
    assert (args.model, args.url, args.concurrency, args.json) == \
        ("mnist", "http://localhost:8000", 8, False)
    assert args.api_key == "s3cret"


def test_expand_directories_by_extension_sorted(tmp_path):
    for name in ["b.PNG", "a.jpg", "notes.txt", "sub/c.webp"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in client.expand([str(tmp_path)])] == ["a.jpg", "b.PNG"]
    deep = client.expand([str(tmp_path)], recursive=True)
    assert [p.relative_to(tmp_path).as_posix() for p in deep] == ["a.jpg", "b.PNG", "sub/c.webp"]
    # A file named explicitly is sent whatever its extension: the service judges the format.
    assert client.expand([str(tmp_path / "notes.txt")]) == [tmp_path / "notes.txt"]


@pytest.mark.parametrize("arg, message", [("missing.png", "no such file or directory"),
                                          ("empty", "no images")])
def test_missing_file_or_empty_directory_is_one_line(capsys, tmp_path, arg, message):
    (tmp_path / "empty").mkdir()
    fails_with_one_line(capsys, message, "predict", str(tmp_path / arg))


def test_table_and_summary():
    ok = {"file": "digits/seven.png", "label": "7", "class_id": 7, "confidence": 0.9876}
    text = client.table([ok, ok, UNSUPPORTED])
    assert text.splitlines()[1].split() == ["digits/seven.png", "7", "98.8%"]
    assert text.splitlines()[3].split() == ["notes.png", "FAILED"]
    assert "3 files: 2 classified, 1 failed" in text
    assert "notes.png: not an image in an accepted format (unsupported_media_type)" in text
    assert "files:" not in client.table([ok])  # one file: just the row
    assert client.summary([ok, UNSUPPORTED]) == {"total": 2, "ok": 1, "failed": 1,
                                                 "declined": 0, "labels": {"7": 1}}


def test_a_declined_image_shows_the_message_and_reason_not_a_label():
    ok = {"file": "seven.png", "label": "7", "class_id": 7, "confidence": 0.98, "accepted": True}
    no = {"file": "blank.png", "label": "1", "class_id": 1, "confidence": 0.97, "accepted": False,
          "reason": "blank", "message": "No digit found"}
    text = client.table([ok, no])
    assert text.splitlines()[2].split() == ["blank.png", "No", "digit", "found", "(blank)"]
    assert "2 files: 2 classified (1 declined), 0 failed" in text
    assert client.summary([ok, no])["labels"] == {"7": 1}  # a declined guess is no label


def test_service_down_is_one_line_and_exit_2(tmp_path):
    """A real process, through the module entry point: no traceback, exit code 2."""
    image = tmp_path / "x.png"
    image.write_bytes(b"\x89PNG")
    proc = subprocess.run([sys.executable, "-m", "vision_client", "predict", str(image),
                           "--url", f"http://127.0.0.1:{free_port()}"],  # bound, then closed
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    one_error_line(proc.stderr, "cannot reach http://127.0.0.1:")
    assert "connection refused" in proc.stderr and "make serve" in proc.stderr


# --- a scripted fake, for what the real service cannot be made to do on demand -------------------

class Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next (status, body) of `script`; the last one repeats."""

    script: list[tuple[int, dict]] = []
    seen: list[str] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(self.headers.get("Authorization", ""))
        status, body = self.script[min(len(self.seen), len(self.script)) - 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def fake(tmp_path):
    Scripted.script, Scripted.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path / "a.png"
    server.shutdown()


def test_overload_is_retried_after_retry_after(capsys, fake):
    url, image = fake
    busy = {"error": {"code": "overloaded", "message": "at capacity"}}
    Scripted.script = [(429, busy), (503, busy), (200, OK)]
    code, out, _ = run(capsys, "predict", str(image), "--url", url, "--api-key", "k")
    assert code == 0 and "98.8%" in out
    assert Scripted.seen == ["Bearer k"] * 3


def test_service_still_overloaded_after_retries_fails_the_file(capsys, fake):
    url, image = fake
    Scripted.script = [(429, {"error": {"code": "overloaded", "message": "at capacity"}})]
    code, out, _ = run(capsys, "predict", str(image), "--url", url, "--json")
    assert code == 1 and len(Scripted.seen) == 3  # bounded: 1 try + 2 retries
    assert json.loads(out)["results"][0]["error"]["code"] == "overloaded"


def test_wrong_api_key_stops_the_run_with_the_service_message(capsys, fake):
    url, image = fake
    Scripted.script = [(401, {"error": {"code": "unauthorized", "message": "missing API key"}})]
    fails_with_one_line(capsys, "missing API key", "predict", str(image), str(image), "--url", url)


# --- against the real service -------------------------------------------------------------------

@pytest.mark.ray
def test_predict_files_prints_a_table(capsys, serve_url):
    images = golden("mnist")[:3]
    code, out, err = run(capsys, "predict", *(str(p) for p, _ in images), "--url", serve_url)
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()[1:len(images) + 1]]
    names = list(MODELS["mnist"].labels)
    assert [(r[0], r[1]) for r in rows] == [(str(p), names[y]) for p, y in images]


@pytest.mark.ray
@pytest.mark.parametrize("model", ["mnist", "fmnist"])
def test_predict_directory_json(capsys, serve_url, tmp_path, model):
    images = golden(model)
    for path, _ in images:
        shutil.copy(path, tmp_path)
    code, out, err = run(capsys, "predict", str(tmp_path), "--model", model, "--json",
                         "--url", serve_url)
    assert code == 0, err
    body = json.loads(out)
    assert body["model"] == model and body["summary"]["ok"] == len(images)
    assert [r["class_id"] for r in body["results"]] == [y for _, y in images]  # both sorted


@pytest.mark.ray
def test_non_image_in_directory_is_listed_as_a_failure(capsys, serve_url, tmp_path):
    good, label = golden("mnist")[0]
    shutil.copy(good, tmp_path / "a_good.png")
    (tmp_path / "b_notes.png").write_text("not an image")
    code, out, _ = run(capsys, "predict", str(tmp_path), "--url", serve_url)
    assert code == 1
    assert "2 files: 1 classified, 1 failed" in out
    failure = next(line for line in out.splitlines() if "b_notes.png:" in line)
    assert "not an image in an accepted format" in failure and "unsupported_media_type" in failure


@pytest.mark.ray
def test_unknown_model_is_one_line_with_the_service_message(capsys, serve_url):
    path, _ = golden("mnist")[0]
    fails_with_one_line(capsys, "no model 'nope'", "predict", str(path), "--model", "nope",
                        "--url", serve_url)


@pytest.mark.ray
def test_rollout_status_shows_each_model_its_candidate_window_and_steps(capsys, serve_url):
    code, out, _ = run(capsys, "rollout", "status", "--url", serve_url)
    assert code == 0 and out.splitlines()[0].split() == ["mnist", "none"]
    code, out, _ = run(capsys, "rollout", "status", "--url", serve_url, "--json")
    assert code == 0 and set(json.loads(out)["models"]) == {"mnist", "fmnist"}


def test_a_rollout_in_text():
    """What a rollout in progress looks like (the body GET /rollout answers)."""
    body = {"models": {"fmnist": {
        "state": "canary", "stable_version": "713cb90915c3", "progress": "120 of 500 answers",
        "candidate": {"version": "0123456789ab", "traffic": 0.1},
        "window": {"stable": {"answered": 1080, "error_rate": 0.0, "decline_rate": 0.021,
                              "p95_ms": 9.4},
                   "candidate": {"answered": 120, "error_rate": 0.0, "decline_rate": 0.025,
                                 "p95_ms": None}},
        "events": [{"t": 0, "event": "started", "detail": "candidate 0123456789ab"},
                   {"t": 1, "event": "gate_passed", "detail": "gate passed: 93.40% right"}]}}}
    text = "\n".join(client.rollout_lines(body))
    assert text.splitlines()[0] == ("fmnist   canary  candidate 0123456789ab at 10% against "
                                    "713cb90915c3  (120 of 500 answers)")
    assert "stable    1080 answered, errors 0.0%, declined 2.1%, p95 9.4 ms" in text
    assert "candidate 120 answered, errors 0.0%, declined 2.5%, p95 -" in text
    assert "gate_passed: gate passed: 93.40% right" in text.splitlines()[-1]


def test_feedback_classifies_then_records_the_right_label(capsys, serve_url, tmp_path):
    image, truth = golden("mnist")[0]
    code, out, err = run(capsys, "feedback", str(image), "--label", str((truth + 1) % 10),
                         "--url", serve_url, "--json")
    assert code == 0, err
    assert out.startswith("recorded as #") and "the model (mnist " in out
    record = json.loads(out.splitlines()[-1])
    assert record["stored"] and record["answer"]["label"] == str(truth)
    code, out, _ = run(capsys, "feedback", str(image), "--label", str((truth + 1) % 10),
                       "--url", serve_url)
    assert code == 0 and out.startswith(f"already recorded as #{record['id']}")
    code, out, err = run(capsys, "feedback", str(image), "--label", "eleven", "--url", serve_url)
    assert code == 1 and out == ""
    one_error_line(err, "label is not one of mnist's labels")


def test_health_and_models(capsys, serve_url):
    code, out, _ = run(capsys, "health", "--url", serve_url)
    assert code == 0 and out.startswith("ok: ") and "mnist" in out and "fmnist" in out
    code, out, _ = run(capsys, "models", "--url", serve_url, "--json")
    assert code == 0 and {m["name"] for m in json.loads(out)} == {"mnist", "fmnist"}


@pytest.mark.ray
@pytest.mark.parametrize("model, message", [("mnist", "No digit found"),
                                            ("fmnist", "This does not look like clothing"),
                                            ("auto", client.NEITHER)])
def test_declined_images_say_so_with_the_reason(capsys, serve_url, model, message):
    blank = ROOT / "tests" / "golden" / "declined_mnist_blank.png"
    code, out, _ = run(capsys, "predict", str(blank), "--model", model, "--url", serve_url)
    assert code == 0 and message in out and "(blank)" in out
