"""training/model.py: the network's shapes, normalisation, and checkpoint round-trips and errors."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from training.model import (
    DATASETS,
    FORMAT,
    CheckpointError,
    Net,
    file_sha256,
    load_checkpoint,
    normalise,
    save_checkpoint,
)

ARCH = {"channels": [4, 8], "hidden": 16, "dropout": 0.0, "num_classes": 10}


@pytest.mark.parametrize("n", [1, 7])
def test_forward_gives_n_by_10_logits(n: int) -> None:
    assert Net()(torch.zeros(n, 1, 28, 28)).shape == (n, 10)
    assert Net(**ARCH)(torch.zeros(n, 1, 28, 28)).shape == (n, 10)


def test_normalise_adds_channel_and_scales() -> None:
    pixels = torch.tensor([[[0, 255]]], dtype=torch.uint8).expand(2, 28, 2)
    x = normalise(pixels, mean=0.5, std=0.25)
    assert x.shape == (2, 1, 28, 2) and x.dtype == torch.float32
    assert torch.allclose(x[0, 0, 0], torch.tensor([-2.0, 2.0]))


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_checkpoint_round_trip_rebuilds_model_and_metadata(tmp_path: Path, dataset: str) -> None:
    torch.manual_seed(0)
    model = Net(**ARCH).eval()
    path = tmp_path / "sub" / "m.pt"
    sha = save_checkpoint(path, model, ARCH, dataset, test_accuracy=0.5, history=[])
    loaded, meta = load_checkpoint(path)
    assert sha == file_sha256(path) == meta["sha256"]
    spec = DATASETS[dataset]
    assert meta["dataset"] == dataset and meta["labels"] == spec["labels"]
    assert (meta["mean"], meta["std"]) == (spec["mean"], spec["std"])
    assert meta["test_accuracy"] == 0.5 and meta["model_args"]["channels"] == (4, 8)
    assert not loaded.training
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))


def test_save_unwraps_a_ddp_style_module(tmp_path: Path) -> None:
    wrapped = types.SimpleNamespace(module=Net(**ARCH))  # DDP keeps the real model in .module
    save_checkpoint(tmp_path / "m.pt", wrapped, ARCH, "mnist")
    load_checkpoint(tmp_path / "m.pt")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("payload", [
    {"state_dict": Net(**ARCH).state_dict()},  # a bare training save: no format tag
    {"format": "someone-else/2", "model_args": ARCH},
    torch.zeros(3),
])
def test_other_torch_files_are_refused(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"not a {FORMAT} checkpoint"):
        load_checkpoint(path)


def _tampered(tmp_path: Path, **changes: object) -> Path:
    """A valid checkpoint with some top-level or metadata entries replaced."""
    path = tmp_path / "m.pt"
    save_checkpoint(path, Net(**ARCH), ARCH, "mnist")
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        target = payload if key in payload else payload["metadata"]
        target[key] = value
    torch.save(payload, path)
    return path


def test_weights_that_do_not_fit_the_architecture(tmp_path: Path) -> None:
    path = _tampered(tmp_path, model_args={**ARCH, "hidden": 32})
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_checkpoint(path)


def test_label_count_must_match_outputs(tmp_path: Path) -> None:
    path = _tampered(tmp_path, labels=["a", "b", "c"])
    with pytest.raises(CheckpointError, match="3 labels for 10 outputs"):
        load_checkpoint(path)
