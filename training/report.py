"""The evaluation figures: confusion matrix and training curves, as PNG files.

Drawn on matplotlib's Agg canvas directly (no pyplot): no display needed, no global figure state.
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))
    return path


def confusion_png(confusion: torch.Tensor, labels: list[str], path: Path, title: str) -> Path:
    """Rows are true labels, columns predictions; colour is the row share, text the count."""
    counts = confusion.double()
    share = counts / counts.sum(1, keepdim=True).clamp(min=1)
    fig = Figure(figsize=(8, 7), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(share.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the true class")
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right")
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in ticks:
        for j in ticks:
            n = int(confusion[i, j])
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    return _save(fig, path)


def training_png(history: list[dict], path: Path, title: str) -> Path | None:
    """Loss and test accuracy per epoch from the checkpoint's history; None when there is none."""
    if not history:
        return None
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train (augmented)")
    loss_ax.plot(epochs, [h["test_loss"] for h in history], "o-", label="test")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    loss_ax.legend()
    acc_ax.plot(epochs, [100 * h["test_accuracy"] for h in history], "o-", color="tab:green")
    acc_ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.set_xticks(epochs)
    fig.suptitle(title)
    return _save(fig, path)
