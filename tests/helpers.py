"""Test-only builders shared by several test files: encoded images, base64 text, and the steady
background traffic that the behaviour tests keep up while they break, scale or reload the app.

Fixtures live in tests/conftest.py; these are plain functions and classes, imported by name.
"""

from __future__ import annotations

import base64
import io
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
from PIL import Image

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
