"""MNIST / Fashion-MNIST as in-memory uint8 tensors: unpack, verify, or download via torchvision."""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision import datasets

from vision_core.formats import file_sha256
from vision_core.registry import MODELS

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# SHA-256 of the UNCOMPRESSED files, copied from ../shared/datasets/SHA256SUMS.
SHA256 = {
    "MNIST": {
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    "FashionMNIST": {
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
}


class DataError(RuntimeError):
    """A dataset problem the user can fix; the message says what and where."""


@dataclass(frozen=True)
class Split:
    """One split held in memory: images N x 28 x 28 uint8, labels N int64."""

    images: torch.Tensor
    labels: torch.Tensor


def folder(dataset: str) -> str:
    """torchvision's class and folder name of a registered model's dataset (MNIST, ...)."""
    if dataset not in MODELS:
        raise DataError(f"unknown dataset {dataset!r}; known: {sorted(MODELS)}")
    return MODELS[dataset].dataset


def _torchvision(dataset: str):
    return getattr(datasets, folder(dataset))


def _unpack_gz(raw: Path) -> None:
    """Unpack `<name>.gz` beside any missing `<name>`: the layout of ../shared/datasets."""
    for name in RAW_FILES:
        target, packed = raw / name, raw / f"{name}.gz"
        if not target.exists() and packed.exists():
            with gzip.open(packed, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _download(dataset: str, root: Path) -> None:
    try:
        _torchvision(dataset)(root=str(root), train=True, download=True)
    except Exception as err:  # torchvision raises URLError, RuntimeError, OSError...
        raise DataError(_missing_message(dataset, root, f"download failed: {err}")) from None


def _missing_message(dataset: str, root: Path, why: str) -> str:
    raw = root / folder(dataset) / "raw"
    return (
        f"{dataset}: no data in {raw} and {why}.\n"
        f"Put the four IDX files ({', '.join(RAW_FILES)}), plain or .gz, in {raw}, "
        f"e.g. `make data` copies them from ../shared/datasets, or pass --data-dir."
    )


def verify(dataset: str, root: Path, expected: dict[str, dict[str, str]] | None = None) -> dict:
    """Check every raw file's SHA-256; return {file: sha256}. Raise DataError on a mismatch."""
    folder_name = folder(dataset)
    sums = (expected or SHA256)[folder_name]
    raw = root / folder_name / "raw"
    found = {}
    for name, want in sums.items():
        got = file_sha256(raw / name)
        if got != want:
            raise DataError(
                f"{dataset}: checksum mismatch for {raw / name}\n  expected {want}\n  got      {got}\n"
                "The file is corrupt or not the official one: delete it and its .gz, then re-copy "
                "from ../shared/datasets (`make data`) or let torchvision download it."
            )
        found[name] = got
    return found


def prepare(dataset: str, root: Path | str, download: bool = True, expected=None) -> dict:
    """Make sure `root` holds verified raw files for `dataset`; return their checksums."""
    root = Path(root)
    raw = root / folder(dataset) / "raw"
    if raw.exists():
        _unpack_gz(raw)
    if not all((raw / n).exists() for n in RAW_FILES):
        if not download:
            raise DataError(_missing_message(dataset, root, "downloading is off"))
        _download(dataset, root)
    return verify(dataset, root, expected)


def load_split(dataset: str, root: Path | str, train: bool) -> Split:
    """Decode a split once into tensors (no per-sample PIL decoding during training)."""
    ds = _torchvision(dataset)(root=str(root), train=train, download=False)
    return Split(images=ds.data.clone(), labels=ds.targets.clone().long())


def load(dataset: str, root: Path | str, download: bool = True, expected=None):
    """Return (train Split, test Split, {file: sha256})."""
    sums = prepare(dataset, root, download=download, expected=expected)
    return load_split(dataset, root, True), load_split(dataset, root, False), sums
