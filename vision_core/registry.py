"""The models this project trains and serves: name -> dataset, labels, normalisation,
preprocessing style and default checkpoint.

Training writes these into every checkpoint (training.model.save_checkpoint), and serving reads
them back from the checkpoint, so a served model can never drift from what it was trained as.
Everything that lists the models (argparse choices, the default serve config, the evaluation
sets, the benchmarks) reads this module instead of writing "mnist" and "fmnist" again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelEntry:
    name: str  # the route and the model name in answers: POST /<name>
    dataset: str  # torchvision's class and folder name (data/<dataset>/raw)
    labels: tuple[str, ...]
    mean: float  # training-set pixel statistics (pixel / 255), for normalisation
    std: float
    style: str  # how vision_core.imaging canonicalises a real picture: "digit" or "clothing"
    checkpoint: str  # the served checkpoint, relative to the project root
    declined_message: str  # what the page and the CLI show instead of a label


MODELS: dict[str, ModelEntry] = {m.name: m for m in (
    ModelEntry("mnist", "MNIST", tuple(str(i) for i in range(10)), 0.1307, 0.3081, "digit",
               "models/mnist_cnn.pt", "No digit found"),
    ModelEntry("fmnist", "FashionMNIST",
               ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
               0.2860, 0.3530, "clothing", "models/fmnist_cnn.pt",
               "This does not look like clothing (a digit?)"),
)}
STYLES = frozenset(m.style for m in MODELS.values())


def others(name: str) -> list[str]:
    """The other models: each one's domain is out of domain for this one (training/ood.py
    fits the detector on their images; the evaluation sets decline-test on them)."""
    return [m for m in MODELS if m != name]


def by_style(style: str) -> ModelEntry:
    """The registered model whose images are canonicalised this way."""
    return next(m for m in MODELS.values() if m.style == style)
