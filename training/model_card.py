"""The Markdown model card written beside a checkpoint by training/evaluate.py.

Everything comes from the checkpoint's own metadata plus one evaluation, so the card cannot drift
from the file it describes (https://huggingface.co/docs/hub/model-cards for the section headings).
"""

from __future__ import annotations

from training.evaluation import Evaluation

# Machine-local paths in train_config: noise in a card that travels with the file.
_LOCAL_KEYS = {"data_dir", "storage_path", "output", "init"}

_USE = {
    "digit": (
        "Classifies one handwritten digit, 0-9, centred, light ink on a dark 28x28 grey canvas "
        "(the MNIST convention). Suited to demos, teaching and canvas-drawn digits passed through "
        "the service's preprocessing.",
        "Not for multi-digit numbers, letters, printed text, or decisions that matter (cheque "
        "amounts, forms) without human review. Photos of paper digits score lower than the test "
        "accuracy: dark ink must be inverted, cropped and centred first, and thin or off-centre "
        "strokes remain harder than MNIST's.",
    ),
    "clothing": (
        "Classifies one clothing item into the 10 Fashion-MNIST classes from a centred, grey "
        "28x28 product-style image on a plain background.",
        "Not for photos with backgrounds, several items, or people wearing the clothes, and not "
        "for classes outside the ten. Shirt, T-shirt/top, Pullover and Coat are often confused "
        "(see the confusion matrix); do not rely on it to tell them apart.",
    ),
}


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _per_class(ev: Evaluation) -> list[str]:
    lines = [_row("class", "label", "accuracy", "test images", "most often mistaken for"),
             _row(*["---"] * 5)]
    labels, conf = ev.meta["labels"], ev.confusion
    for k, (label, acc) in enumerate(ev.per_class().items()):
        wrong = conf[k].clone()
        wrong[k] = 0
        j = int(wrong.argmax())
        mistaken = f"{labels[j]} ({int(wrong[j])})" if wrong[j] else "-"
        lines.append(_row(k, label, "n/a" if acc is None else f"{acc:.2%}", int(conf[k].sum()),
                          mistaken))
    return lines


def _config(meta: dict) -> list[str]:
    cfg = {k: v for k, v in (meta.get("train_config") or {}).items() if k not in _LOCAL_KEYS}
    if not cfg:
        return ["No training config recorded."]
    lines = [_row("setting", "value"), _row("---", "---")]
    for key, value in cfg.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        lines.append(_row(key, f"`{value}`"))
    return lines


def _data(ev: Evaluation) -> list[str]:
    recorded = ev.meta.get("data_sha256") or {}
    if not recorded:
        return ["No data checksums recorded at training."]
    same = all(ev.data_sha256.get(name) == sha for name, sha in recorded.items())
    lines = [_row("raw file (uncompressed)", "sha256 at training"), _row("---", "---")]
    lines += [_row(name, f"`{sha}`") for name, sha in recorded.items()]
    return lines + ["", f"The files evaluated on {'match' if same else 'do NOT match'} these."]


def _ood(ev: Evaluation) -> list[str]:
    """The decline rule from the metadata, and training/ood_eval.py's figures for this very file."""
    ood = ev.meta.get("ood")
    if not ood:
        return ["No out-of-domain detector in this checkpoint: only blank images are declined "
                "(`python -m training.ood` fits one)."]
    lines = [_row("", ""), _row("---", "---"), _row("method", ood["method"]),
             _row("features", ood.get("features", "n/a")), _row("score", ood.get("score", "n/a")),
             _row("threshold", f"`{ood['threshold']:.4f}`"),
             _row("fitted on", f"{ood.get('fit_split')}; negatives: "
                  + "; ".join(ood.get("negatives", []))),
             _row("threshold chosen on", ood.get("threshold_split"))]
    lines += ["", "Blank images (no ink standing out from the background) are declined by the "
              "service's ink check (`serve_app/imaging.py`), whatever the detector says."]
    if ood.get("weights_saw_threshold_split"):
        lines += ["", "**Disclosure:** the network's weights were trained on all 60,000 "
                  "training images, including the held-out images that chose the threshold; "
                  "only the detector's fit excluded them. In-domain scores on them are therefore "
                  "optimistic, which is why the figures below are measured on the test set and "
                  "on images the detector never saw."]
    results = ev.ood_results
    if not results:
        return [*lines, "", "No out-of-domain figures for this file: run "
                       "`python -m training.evaluate` without `--ood-n 0`."]
    through = ("through HTTP, as a user sends them" if results.get("through") == "HTTP"
               else "through the service's preprocessing and decision code, in-process "
                    "(tests/benchmarks/test_ood.py: HTTP answers the same)")
    lines += ["", f"Measured on training/ood_eval.py's evaluation set ({results['n']} images per "
              f"kind, the official test set in full) {through}; see docs/ood.md for the kinds:",
              "",
              _row("out-of-domain kind", "declined"), _row("---", "---")]
    lines += [_row(kind, f"{rate:.1%}") for kind, rate in results["declined"].items()]
    lines += ["", _row("in-domain set", "kept", "accuracy (all)", "/classify: right model",
                       "right model and label"), _row(*["---"] * 5)]
    lines += [_row(name, f"{f['kept']:.1%}", f"{f['accuracy']:.2%}", f"{f['classify_routed']:.1%}",
                   f"{f['classify_correct']:.1%}") for name, f in results["kept"].items()]
    return lines


def render(ev: Evaluation, images: dict[str, str | None]) -> str:
    """The card as Markdown; `images` maps "confusion"/"training" to PNG names beside it."""
    meta, args = ev.meta, ev.meta["model_args"]
    recorded = meta.get("test_accuracy")
    parent = meta.get("parent_sha256")
    use, limits = _USE.get(meta.get("style", ""), ("Unspecified.", "Unspecified."))
    size = ev.checkpoint.stat().st_size
    smoke = (meta.get("train_config") or {}).get("smoke_test")
    lines = [
        f"# Model card: {ev.checkpoint.name}", "",
        *(["**Smoke-test checkpoint: trained on synthetic data to check the pipeline. "
           "Not a usable model.**", ""] if smoke else []),
        f"A small CNN classifying 28x28 grey images of the `{meta['dataset']}` dataset into "
        f"{len(meta['labels'])} classes, trained with Ray Train. Generated by "
        f"`python -m training.evaluate {ev.checkpoint.name}` from the checkpoint's metadata.", "",
        _row("", ""), _row("---", "---"),
        _row("dataset", f"`{meta['dataset']}`"),
        _row("test accuracy", f"**{ev.accuracy:.2%}** on {ev.n:,} test images"
             + (f" (recorded at training: {recorded:.2%})" if recorded is not None else "")),
        _row("architecture", "`Net(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")`"),
        _row("parameters", f"{ev.num_params:,}"),
        _row("file", f"{ev.checkpoint.name}, {size:,} bytes ({size / 1e6:.1f} MB)"),
        _row("sha256", f"`{meta['sha256']}`"),
        _row("input normalisation", f"(pixel / 255 - {meta['mean']}) / {meta['std']}"),
        _row("parent checkpoint", f"fine-tuned from sha256 `{parent}`" if parent
             else "none (trained from scratch)"),
        _row("code version", f"`{meta.get('code_version', 'unknown')}`"),
        _row("training time", f"{meta['train_seconds']} s" if "train_seconds" in meta else "n/a"),
        "", "## Intended use", "", use, "", "## Limitations", "", limits, "",
        "The test accuracy is measured on the official test split, drawn from the same "
        "distribution as the training data; real-world inputs will score lower.", "",
        "## Per-class accuracy", "", *_per_class(ev), "",
        "## Out-of-domain inputs", "", *_ood(ev), "",
        "## Confusion matrix", "", f"![confusion matrix]({images.get('confusion')})", "",
        "## Training", "",
        f"![training curves]({images['training']})" if images.get("training")
        else "No per-epoch history in this checkpoint.", "",
        *_config(meta), "", "## Data", "", *_data(ev),
    ]
    return "\n".join(lines) + "\n"
