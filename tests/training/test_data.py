"""training/data.py on synthetic IDX files: loading, .gz unpacking, checksum and missing data."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from training import data
from training.synthetic import make_images, write_dataset
from vision_core.formats import file_sha256


@pytest.mark.parametrize("dataset, folder", [("mnist", "MNIST"), ("fmnist", "FashionMNIST")])
def test_load_reads_synthetic_idx(tmp_path: Path, dataset: str, folder: str) -> None:
    expected = write_dataset(tmp_path, dataset, n_train=32, n_test=16)
    train, test, sums = data.load(dataset, tmp_path, download=False, expected=expected)
    assert train.images.shape == (32, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.shape == (16,) and test.labels.dtype == torch.int64
    images, labels = make_images(32, seed=1)  # what write_dataset wrote for the train split
    assert np.array_equal(train.images.numpy(), images)
    assert np.array_equal(train.labels.numpy(), labels)
    assert sums == expected[folder]


def test_gz_files_are_unpacked_and_verified(tmp_path: Path) -> None:
    expected = write_dataset(tmp_path, "mnist", n_train=16, n_test=8)
    raw = tmp_path / "MNIST" / "raw"
    originals = {}
    for name in data.RAW_FILES:  # leave only <name>.gz, the layout of ../shared/datasets
        originals[name] = (raw / name).read_bytes()
        (raw / f"{name}.gz").write_bytes(gzip.compress(originals[name]))
        (raw / name).unlink()
    data.prepare("mnist", tmp_path, download=False, expected=expected)
    for name, content in originals.items():
        assert (raw / name).read_bytes() == content


def test_checksum_mismatch_names_the_file_and_the_fix(tmp_path: Path) -> None:
    expected = write_dataset(tmp_path, "mnist", n_train=16, n_test=8)
    bad = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    content = bytearray(bad.read_bytes())
    content[-1] ^= 1
    bad.write_bytes(bytes(content))
    with pytest.raises(data.DataError) as err:
        data.prepare("mnist", tmp_path, download=False, expected=expected)
    message = str(err.value)
    assert f"checksum mismatch for {bad}" in message
    assert expected["MNIST"][bad.name] in message and file_sha256(bad) in message
    assert "make data" in message


def test_synthetic_files_fail_the_official_checksums(tmp_path: Path) -> None:
    write_dataset(tmp_path, "fmnist", n_train=16, n_test=8)
    with pytest.raises(data.DataError, match="checksum mismatch"):
        data.prepare("fmnist", tmp_path, download=False)


def test_missing_data_without_download_says_where_to_put_files(tmp_path: Path) -> None:
    with pytest.raises(data.DataError) as err:
        data.prepare("fmnist", tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert "downloading is off" in message
    assert all(name in message for name in data.RAW_FILES)
