"""The one CNN definition and self-describing checkpoints (the per-model constants are
vision_core.registry's)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vision_core import decision
from vision_core.formats import CHECKPOINT_FORMAT as FORMAT
from vision_core.registry import MODELS


class CheckpointError(ValueError):
    """The file is not a checkpoint this code can serve."""


def _block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convs with BatchNorm, then 2x2 max-pool (halves the side)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Net(nn.Module):
    """Input N x 1 x 28 x 28 normalised floats; output N x num_classes logits."""

    def __init__(self, channels: tuple[int, int] = (32, 64), hidden: int = 256,
                 dropout: float = 0.3, num_classes: int = 10):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(_block(1, c1), _block(c1, c2))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * 7 * 7, hidden),
            nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def normalise(pixels: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (or 0-255 float) pixels -> the float input the network was trained on."""
    x = pixels.float().div_(255.0)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return x.sub_(mean).div_(std)


def scores(model: Net, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised input [N, 1, 28, 28] -> the out-of-domain detector's features
    [N, hidden + 2 * c1 + 2 * c2] and the logits [N, K]. The graph training/export.py exports.

    Features: the penultimate layer, plus per-channel mean and std of the first block's output
    and mean and max of the second's. The pooled conv statistics carry texture (noise, photo
    grain) that the penultimate layer of a classifier learns to ignore.
    """
    b1 = model.features[0](x)
    b2 = model.features[1](b1)
    last = model.head[:-1](b2)
    feats = torch.cat([last, b1.mean((2, 3)), b1.std((2, 3)), b2.mean((2, 3)),
                       b2.amax((2, 3))], 1)
    return feats, model.head[-1](last)


def features_and_logits(model: Net, meta: dict, pixels) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass over N 28x28 uint8 images (array or tensor): `scores`."""
    x = normalise(torch.as_tensor(pixels), meta["mean"], meta["std"])
    with torch.inference_mode():
        return scores(model, x.contiguous(memory_format=torch.channels_last))


def probabilities(model: Net, meta: dict, pixels) -> torch.Tensor:
    """Softmax scores [N, K] for N 28x28 uint8 images."""
    return torch.softmax(features_and_logits(model, meta, pixels)[1], dim=1)


def ood_score(ood: dict, feats: torch.Tensor) -> torch.Tensor:
    """vision_core.decision.ood_score on torch features (training/ood.py fits with these)."""
    return torch.from_numpy(decision.ood_score(ood, feats.numpy()))


def decide(model: Net, meta: dict, pixels, blank) -> dict[str, Any]:
    """vision_core.decision.decide on one forward pass of `model` over N uint8 images."""
    feats, logits = features_and_logits(model, meta, pixels)
    return decision.decide(meta, feats.numpy(), logits.numpy(), blank)


def save_checkpoint(path: Path | str, model: nn.Module, arch: dict, dataset: str, **meta) -> str:
    """Write weights + everything needed to rebuild and describe them; return the file's sha256."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    spec = MODELS[dataset]
    payload = {
        "format": FORMAT,
        "model_args": arch,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": {"dataset": dataset, "labels": list(spec.labels), "mean": spec.mean,
                     "std": spec.std, "style": spec.style, **meta},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def rewrite_metadata(path: Path | str, **meta) -> str:
    """Add or replace metadata entries of a checkpoint in place (weights untouched); new sha256."""
    payload = torch.load(io.BytesIO(Path(path).read_bytes()), map_location="cpu",
                         weights_only=True)
    payload["metadata"].update(meta)
    buf = io.BytesIO()
    torch.save(payload, buf)
    Path(path).write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def load_checkpoint(path: Path | str) -> tuple[Net, dict]:
    """Rebuild the model from a checkpoint: (model in eval mode, metadata incl. sha256)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    raw = path.read_bytes()
    try:
        # weights_only: a checkpoint is data, never code (no pickle execution).
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable torch checkpoint: {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (format="
                              f"{payload.get('format') if isinstance(payload, dict) else None!r})")
    try:
        args = dict(payload["model_args"])
        args["channels"] = tuple(args.get("channels", (32, 64)))
        model = Net(**args)
        model.load_state_dict(payload["state_dict"])
        meta = dict(payload["metadata"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: weights do not fit the architecture, or the checkpoint "
                              f"is incomplete: {type(err).__name__}: {err}") from None
    if len(meta.get("labels", [])) != args.get("num_classes", 10):
        raise CheckpointError(f"{path}: {len(meta.get('labels', []))} labels for "
                              f"{args.get('num_classes', 10)} outputs")
    meta["sha256"] = hashlib.sha256(raw).hexdigest()
    meta["model_args"] = args
    # channels_last: CPU convolutions run ~20% faster at batch 1 and 64 (benchmarks/NOTES.md,
    # lever 12). load_state_dict into a training model copies values, so fine-tuning is unaffected.
    return model.eval().to(memory_format=torch.channels_last), meta
