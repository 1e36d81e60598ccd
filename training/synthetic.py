"""Tiny synthetic datasets in the real IDX format, for smoke tests and unit tests."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from training.data import RAW_FILES, folder
from vision_core.formats import file_sha256


def _write_idx(path: Path, array: np.ndarray) -> None:
    # IDX: magic (0, 0, type 0x08 = uint8, ndim), then big-endian dims, then raw bytes.
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable toy images: class k is a bright bar at row 2 + 2k, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 + 2 * k: 4 + 2 * k, 4:24] = 255
    return images, labels


def write_dataset(root: Path | str, dataset: str, n_train: int = 256, n_test: int = 64) -> dict:
    """Write the four raw files under root/<Folder>/raw; return checksums keyed like SHA256."""
    where = folder(dataset)
    raw = Path(root) / where / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train_x, train_y = make_images(n_train, seed=1)
    test_x, test_y = make_images(n_test, seed=2)
    for name, arr in zip(RAW_FILES, (train_x, train_y, test_x, test_y), strict=True):
        _write_idx(raw / name, arr)
    return {where: {name: file_sha256(raw / name) for name in RAW_FILES}}
