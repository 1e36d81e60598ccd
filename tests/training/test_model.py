"""training/model.py: the network's shapes, normalisation, and checkpoint round-trips and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.model import (
    FORMAT,
    CheckpointError,
    Net,
    load_checkpoint,
    normalise,
    probabilities,
    save_checkpoint,
)
from vision_core.formats import file_sha256
from vision_core.registry import MODELS

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


@pytest.mark.parametrize("dataset", list(MODELS))
def test_checkpoint_round_trip_rebuilds_model_and_metadata(tmp_path: Path, dataset: str) -> None:
    torch.manual_seed(0)
    model = Net(**ARCH).eval()
    path = tmp_path / "sub" / "m.pt"
    sha = save_checkpoint(path, model, ARCH, dataset, test_accuracy=0.5, history=[])
    loaded, meta = load_checkpoint(path)
    assert sha == file_sha256(path) == meta["sha256"]
    spec = MODELS[dataset]
    assert meta["dataset"] == dataset and meta["labels"] == list(spec.labels)
    assert (meta["mean"], meta["std"], meta["style"]) == (spec.mean, spec.std, spec.style)
    assert meta["test_accuracy"] == 0.5 and meta["model_args"]["channels"] == (4, 8)
    assert not loaded.training
    x = torch.randn(3, 1, 28, 28)
    # Loaded weights are channels_last (faster on CPU); the layout reorders float sums only.
    assert loaded.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_probabilities_are_the_softmax_of_the_normalised_forward_pass(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Net(**ARCH).eval()
    save_checkpoint(tmp_path / "m.pt", model, ARCH, "mnist")
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    pixels = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    probs = probabilities(loaded, meta, pixels.numpy())
    expected = torch.softmax(model(normalise(pixels, meta["mean"], meta["std"])), dim=1)
    assert probs.shape == (5, 10) and not probs.requires_grad
    assert torch.allclose(probs, expected, atol=1e-6)
    assert torch.allclose(probs.sum(1), torch.ones(5))


def test_a_loaded_checkpoint_still_initialises_a_training_model(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m.pt", Net(**ARCH), ARCH, "mnist")
    parent, _ = load_checkpoint(tmp_path / "m.pt")
    child = Net(**ARCH)
    child.load_state_dict(parent.state_dict())  # what `train --init` does
    assert child.features[0][0].weight.is_contiguous()  # values copied, layout kept
    assert torch.equal(child.features[0][0].weight, parent.features[0][0].weight)


class Wrapper(torch.nn.Module):
    """What DistributedDataParallel looks like to save_checkpoint: the model in `.module`, and
    every state_dict key prefixed with "module."."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module


def test_save_unwraps_a_ddp_style_module(tmp_path: Path) -> None:
    model = Net(**ARCH).eval()
    assert all(k.startswith("module.") for k in Wrapper(model).state_dict())
    save_checkpoint(tmp_path / "m.pt", Wrapper(model), ARCH, "mnist")
    saved = torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"]
    assert saved.keys() == model.state_dict().keys()  # no "module." prefix
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    x = torch.randn(2, 1, 28, 28)
    assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_labels_are_torchvisions() -> None:
    """torchvision's dataset classes are an independent record of the official label order."""
    from torchvision.datasets import MNIST, FashionMNIST

    assert list(MODELS["fmnist"].labels) == FashionMNIST.classes
    assert list(MODELS["mnist"].labels) == [c.split(" - ")[0] for c in MNIST.classes]
    assert (MODELS["mnist"].dataset, MODELS["fmnist"].dataset) == (MNIST.__name__,
                                                                   FashionMNIST.__name__)


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
