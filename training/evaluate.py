"""Score a checkpoint on its official test set: `python -m training.evaluate models/mnist_cnn.pt`.

Prints accuracy and per-class accuracy, and writes beside the checkpoint (or in --out-dir) a
confusion matrix, training curves and a Markdown model card, so a checkpoint can be judged and
published without re-running training. The card's out-of-domain figures come from the
evaluation set of training/ood_eval.py, measured here (--ood-n images per kind; 0 skips them).
Exit code 2 means bad data or a bad checkpoint.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from training import data, model_card, ood_eval, report, settings
from training.evaluation import Evaluation
from training.model import CheckpointError, load_checkpoint, probabilities
from vision_core.registry import MODELS

OOD_N = 300  # out-of-domain images per kind for the card (training/ood_eval.py)


def ood_figures(checkpoint: Path | str, dataset: str, n: int, data_dir: Path | str) -> dict:
    """What this checkpoint declines of the out-of-domain evaluation set and keeps of real inputs
    (the other models, for /classify, are the served ones), in-process."""
    service = ood_eval.InProcess({dataset: checkpoint})
    return {**ood_eval.measure(service, dataset, n, str(data_dir)), "n": n,
            "through": "in-process"}


def evaluate(checkpoint: Path | str, data_dir: Path | str = "data", expected: dict | None = None,
             batch_size: int = 1000, ood_n: int = 0) -> Evaluation:
    """Rebuild the model from `checkpoint` and score it on its dataset's test split (and, with
    `ood_n`, on the out-of-domain evaluation set).

    `expected` replaces the official checksums; only tests pass it (with training.synthetic data),
    so the command line always evaluates on verified official files.
    """
    model, meta = load_checkpoint(checkpoint)
    dataset = meta.get("dataset")
    if dataset not in MODELS:
        raise CheckpointError(f"{checkpoint}: unknown dataset {dataset!r} in its metadata")
    sums = data.prepare(dataset, data_dir, expected=expected)
    test = data.load_split(dataset, data_dir, train=False)
    k = len(meta["labels"])
    confusion = torch.zeros(k, k, dtype=torch.long)
    for i in range(0, len(test.labels), batch_size):
        pred = probabilities(model, meta, test.images[i:i + batch_size]).argmax(1)
        truth = test.labels[i:i + batch_size]
        confusion += torch.bincount(truth * k + pred, minlength=k * k).view(k, k)
    figures = ood_figures(checkpoint, dataset, ood_n, data_dir) if ood_n else None
    return Evaluation(Path(checkpoint), meta, sum(p.numel() for p in model.parameters()),
                      confusion, sums, figures)


def write_outputs(ev: Evaluation, out_dir: Path | str | None = None) -> dict[str, Path | None]:
    """Write `<stem>_confusion.png`, `<stem>_training.png` (if history) and `<stem>.md`."""
    out = Path(out_dir) if out_dir else ev.checkpoint.parent
    stem, name = ev.checkpoint.stem, f"{ev.checkpoint.name} ({ev.meta['dataset']})"
    files = {
        "confusion": report.confusion_png(ev.confusion, ev.meta["labels"],
                                          out / f"{stem}_confusion.png", f"{name}: test set"),
        "training": report.training_png(ev.meta.get("history") or [],
                                        out / f"{stem}_training.png", f"{name}: training"),
    }
    card = out / f"{stem}.md"
    card.write_text(model_card.render(ev, {k: p and p.name for k, p in files.items()}))
    return {**files, "card": card}


def print_report(ev: Evaluation) -> None:
    recorded = ev.meta.get("test_accuracy")
    print(f"{ev.checkpoint} ({ev.meta['dataset']}, sha256 {ev.meta['sha256'][:12]}) "
          f"on {ev.n} test images")
    print(f"accuracy {ev.accuracy:.2%}" + (f"  (recorded at training: {recorded:.2%})"
                                          if recorded is not None else ""))
    totals = ev.confusion.sum(1)
    for (label, acc), total in zip(ev.per_class().items(), totals.tolist(), strict=True):
        print(f"  {label:<12} {'n/a' if acc is None else f'{acc:7.2%}'}  ({total} images)")


def main(argv: list[str] | None = None) -> int:
    p = settings.checkpoint_cli("python -m training.evaluate", __doc__, "e.g. models/mnist_cnn.pt")
    p.add_argument("--out-dir", help="where the PNGs and model card go (default: beside it)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    p.add_argument("--ood-n", type=int, default=OOD_N,
                   help="out-of-domain images per kind for the card; 0 skips (default: %(default)s)")
    args = p.parse_args(argv)
    try:
        ev = evaluate(args.checkpoint, args.data_dir, ood_n=args.ood_n)
    except (data.DataError, CheckpointError) as err:
        return settings.fail(err)
    print_report(ev)
    files = write_outputs(ev, args.out_dir)
    print("wrote " + ", ".join(str(f) for f in files.values() if f))
    if args.json:
        print(json.dumps({**ev.summary(), "files": {k: f and str(f) for k, f in files.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
