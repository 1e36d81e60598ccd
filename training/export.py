"""Export a checkpoint to ONNX, beside it, for the serving runtime (vision_core.onnx_model).

`models/mnist_cnn.pt` -> `models/mnist_cnn.onnx`: uint8 pixels [N, 28, 28] in, the detector's
features and the logits out (training.model.scores, normalisation inside the graph), and the
checkpoint's metadata as JSON in the file's metadata_props, with the sha256 of the checkpoint it
came from. The classifier serves an export only while that sha256 matches its checkpoint, so a
retrained or re-fitted checkpoint is never served with stale weights.

ONNX Runtime answers within 1e-5 of torch (tests/training/test_export.py), 3-4x faster on one
CPU thread, and its replicas need no torch (benchmarks/NOTES.md). Run by `make train`,
`make ood-fit` and `make export`: `python -m training.export models/*.pt`.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from training.model import CheckpointError, load_checkpoint, normalise, scores
from vision_core.formats import METADATA_KEY, ONNX_FORMAT

OPSET = 17


class _Graph(nn.Module):
    """What is exported: uint8 pixels -> (features, logits), as training.model.decide sees them."""

    def __init__(self, model: nn.Module, mean: float, std: float):
        super().__init__()
        self.model, self.mean, self.std = model, mean, std

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return scores(self.model, normalise(pixels, self.mean, self.std))


def _plain(value):
    """Metadata as JSON: tensors become lists."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def export(checkpoint: str | Path) -> Path:
    """Write `<checkpoint>.onnx` (same stem) and return its path."""
    import onnx

    checkpoint = Path(checkpoint)
    model, meta = load_checkpoint(checkpoint)
    # The exporter traces in the default memory format; channels_last is a torch CPU speed-up.
    graph = _Graph(model.to(memory_format=torch.contiguous_format), meta["mean"], meta["std"])
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(graph.eval(), (torch.zeros(2, 28, 28, dtype=torch.uint8),), buf,
                          input_names=["pixels"], output_names=["features", "logits"],
                          dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"},
                                        "logits": {0: "n"}},
                          opset_version=OPSET, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    described = {k: v for k, v in meta.items() if k != "sha256"}
    proto.metadata_props.add(key=METADATA_KEY, value=json.dumps(_plain({
        "format": ONNX_FORMAT, "source_sha256": meta["sha256"], "metadata": described})))
    out = checkpoint.with_suffix(".onnx")
    onnx.save(proto, out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="e.g. models/mnist_cnn.pt")
    args = p.parse_args(argv)
    for path in args.checkpoints:
        try:
            out = export(path)
        except CheckpointError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{path} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
