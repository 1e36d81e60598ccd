"""Test-only builders shared by several test files: encoded images, base64 text, the steady
background traffic that the behaviour tests keep up while they break, scale or reload the app,
the docs' curl examples, and a local start of the service the way a user does it (`make serve`).

Fixtures live in tests/conftest.py; these are plain functions and classes, imported by name.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import signal
import struct
import subprocess
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"

T = TypeVar("T")


def b64(data: bytes | Path) -> str:
    """Base64 text of some bytes, or of a file's bytes, as the JSON API takes an image."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    return base64.b64encode(raw).decode()


def from_b64(text: str) -> Image.Image:
    """The image in base64 text, as the service returns the 28 x 28 image it saw."""
    return Image.open(io.BytesIO(base64.b64decode(text)))


def encode(image: np.ndarray | Image.Image, fmt: str = "PNG", **options) -> bytes:
    """An array (uint8, grey / RGB / RGBA by its shape) or a PIL image, encoded as `fmt`."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def png(array: np.ndarray) -> bytes:
    return encode(array, "PNG")


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid PNG whose header claims width x height: a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))


class Traffic(Generic[T]):
    """`send()` called in a loop from `threads` background threads for as long as the `with`
    block runs; every call's return value lands in `results` (list.append is thread-safe).

    An exception in `send` ends its thread (and is printed by threading's excepthook), so a
    `send` that must survive errors catches them itself.
    """

    def __init__(self, send: Callable[[], T], threads: int = 1):
        self.results: list[T] = []
        self._send, self._stop = send, threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.results.append(self._send())

    def __enter__(self) -> Traffic[T]:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def resaved_mnist(path: Path, note: str) -> str:
    """The served digit model saved again with a note: the same weights in a new file, so a new
    version (what a hot reload swaps in). Returns the new file's sha256."""
    from training.model import load_checkpoint, save_checkpoint
    from training.paths import resolve

    model, meta = load_checkpoint(resolve("models/mnist_cnn.pt"))
    return save_checkpoint(path, model, meta["model_args"], "mnist",
                           test_accuracy=meta["test_accuracy"], note=note)


# The docs' examples of the local service: a curl command and the answer shown under it.
SHOWN_URL = "http://127.0.0.1:8000"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.M | re.S)


def curl_examples(doc: Path) -> list[tuple[str, str]]:
    """(bash command, the JSON shown as its answer) for each curl example of the local service."""
    text, examples = doc.read_text(), []
    blocks = list(BLOCK.finditer(text))
    for i, block in enumerate(blocks):
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        lang, body = block.group(1), block.group(2)
        if SHOWN_URL not in body or "curl" not in body:
            continue
        if lang == "bash" and following is not None and following.group(1) == "json" \
                and not text[block.end():following.start()].strip():
            examples.append((body, following.group(2)))
        elif lang == "console":  # `$ command` lines, each followed by its output
            for part in re.split(r"^\$ ", body, flags=re.M)[1:]:
                command, _, output = part.partition("\n")
                if command.startswith("curl") and output.strip():
                    examples.append((command, output))
    return examples


def readme_curl() -> str:
    """The README's first curl command (its "Try it" section): the seed's contract."""
    return curl_examples(ROOT / "README.md")[0][0]


def run_curl(command: str, url: str) -> bytes:
    """A docs curl command sent to `url` instead of the one shown; the answer's bytes."""
    done = subprocess.run(["bash", "-c", command.replace(SHOWN_URL, url)], cwd=ROOT,
                          capture_output=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{command}: exit code {done.returncode}: {done.stderr[-500:]!r}")
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """A new terminal's environment: nothing of the test session's Ray."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_", "VISION_")) and k != "PYTHONPATH"}
    return {**env, "PATH": f"{BIN}:{env.get('PATH', '')}", **extra}


def in_session(sid: int) -> list[psutil.Process]:
    """Every process of a session. Ray puts HAProxy in a process group of its own, and it
    outlives a killed parent, so stopping a process group is not enough."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getsid(proc.pid) == sid:
                found.append(proc)
    return found


@contextlib.contextmanager
def started(cmd: list[str], log: Path):
    """Run `cmd` in a session of its own and stop exactly that session afterwards
    (Ctrl-C first, as a user would; then whatever of the session is left)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=clean_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        left = in_session(proc.pid)
        for child in left:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(left, timeout=30)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
