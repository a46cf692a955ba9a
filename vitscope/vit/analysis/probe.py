"""A linear probe on a backbone's CLS embeddings: when a model has no classifier but the images are
labelled, class-based analyses run against a multinomial logistic regression fitted here.

The fit is deterministic: a seeded split stratified by class (half of each class, rounded up, to
training), standardised float64 features, full-batch L-BFGS from zero for a fixed number of
iterations on the mean cross-entropy plus an L2 penalty on weights and biases. The penalty on the
biases too keeps the minimiser unique and finite even for a class absent from the training split.
The standardisation is folded into the returned head, which reads raw embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vitscope.vit.analysis.base import Progress, stream
from vitscope.vit.data.inputs import ImageSource, SynthSource
from vitscope.vit.models import LoadedModel
from vitscope.vit.models.probe import LinearHead

MIN_IMAGES = 8
"""Fewest labelled images a probe is fitted on: below that, a held-out accuracy over a handful of
images says nothing about the probe."""

L2 = 1e-3
"""L2 penalty on the standardised problem's weights and biases (per unit of mean cross-entropy)."""

STEPS = 200
"""L-BFGS iterations (one `step`, at most this many; it stops earlier only at an exact optimum)."""


@dataclass(frozen=True)
class ProbeFit:
    """A fitted probe: its head and how well it does on the split it saw and the one it did not."""

    head: LinearHead
    train_images: int
    test_images: int
    train_accuracy: float
    held_out_accuracy: float
    seed: int

    def summary(self) -> dict:
        """The JSON block the head-importance summary carries under `probe`."""
        return {
            "held_out_accuracy": self.held_out_accuracy,
            "train_accuracy": self.train_accuracy,
            "train_images": self.train_images,
            "test_images": self.test_images,
            "classes": list(self.head.labels),
            "l2": L2,
            "steps": STEPS,
            "seed": self.seed,
        }


def fit_logistic(
    features: torch.Tensor, labels: torch.Tensor, n_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on features (n, D), labels (n,) in 0..n_classes-1.

    Returns (weight (C, D), bias (C,)) in float64 for the raw features (standardisation folded in).
    """
    x = features.detach().to("cpu", torch.float64)
    y = labels.detach().to("cpu", torch.long)
    mean, std = x.mean(0), x.std(0, correction=0).clamp_min(1e-12)
    z = (x - mean) / std
    weight = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    # zero tolerances: the iteration count, not the data's scale, decides when the fit stops
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        max_iter=STEPS,
        history_size=20,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(torch.addmm(bias, z, weight.T), y)
        loss = loss + 0.5 * L2 * (weight.square().sum() + bias.square().sum())
        loss.backward()
        return loss

    optimizer.step(closure)
    w = weight.detach() / std
    return w, bias.detach() - w @ mean


def stratified_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of positions 0..n-1 by class: (train, test) index arrays, sorted.

    Half of each class, rounded up, goes to training (a class of one image trains only).
    """
    rng = np.random.default_rng(seed)
    train: list[int] = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        train.extend(members[: math.ceil(len(members) / 2)].tolist())
    chosen = np.zeros(len(labels), bool)
    chosen[train] = True
    return np.flatnonzero(chosen), np.flatnonzero(~chosen)


def accuracy(head: LinearHead, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of `head` on features (n, D) with labels (n,); NaN when n is 0."""
    if len(labels) == 0:
        return math.nan
    return float((head(features).argmax(-1).cpu() == labels.cpu()).float().mean())


def fit_probe(features: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], seed: int) -> ProbeFit:
    """Fit on a seeded stratified half of features (n, D) with labels (n,) indexing `classes`; test on the rest."""
    train, test = stratified_split(labels.cpu().numpy(), seed)
    weight, bias = fit_logistic(features[train], labels[train], len(classes))
    head = LinearHead(weight.float(), bias.float(), tuple(classes))
    x, y = features.float().cpu(), labels.cpu()
    return ProbeFit(
        head,
        len(train),
        len(test),
        accuracy(head, x[train], y[train]),
        accuracy(head, x[test], y[test]),
        seed,
    )


def why_no_probe(labels: np.ndarray) -> str | None:
    """Why the labels (n,) (-1 = unknown) cannot train a probe, or None when they can."""
    known = labels[labels >= 0]
    if len(known) == 0:
        return "the model has no classifier and the images have no labels for a probe"
    if len(np.unique(known)) < 2:
        return "the model has no classifier and the labelled images are all of one class: a probe needs two"
    if len(known) < MIN_IMAGES:
        return (
            f"the model has no classifier and only {len(known)} images are labelled: "
            f"a probe needs at least {MIN_IMAGES}"
        )
    if not (np.unique(known, return_counts=True)[1] >= 2).any():
        return (
            "the model has no classifier and no class has two labelled images: none is left to test a probe"
        )
    return None


def class_names(source: ImageSource, labels: np.ndarray) -> list[str]:
    """The classes a source's labels index: SynthScenes categories, the source's own names, else numbers."""
    if isinstance(source, SynthSource):
        from vitscope.vit.data.synthscenes import CATEGORIES

        return list(CATEGORIES)
    names = list(getattr(source, "class_names", None) or [])
    top = int(labels.max()) + 1 if len(labels) else 0
    return names if len(names) >= top else names + [f"class {i}" for i in range(len(names), top)]


@torch.no_grad()
def cls_embeddings(
    lm: LoadedModel, source: ImageSource, batch_size: int, progress: Progress, span: tuple[float, float]
) -> tuple[torch.Tensor, np.ndarray]:
    """Final CLS embeddings (n, D) float32 on the CPU of a backbone's labelled images in `source`, and their
    labels (n,); unlabelled images are not run."""
    width = int(lm.model.config.hidden_size)
    embeddings, labels = [torch.empty(0, width)], [np.empty(0, np.int64)]
    for batch in stream(source, batch_size, lm.input_geometry, progress, "embedded for the probe", span):
        known = np.asarray(batch.labels, np.int64) >= 0
        if known.any():
            pixels = lm.preprocess(batch.images[known])
            embeddings.append(lm.features(pixels)[:, lm.layout.cls_index].float().cpu())
            labels.append(np.asarray(batch.labels, np.int64)[known])
    return torch.cat(embeddings), np.concatenate(labels)


def probe_on(
    lm: LoadedModel,
    source: ImageSource,
    batch_size: int,
    seed: int,
    progress: Progress,
    span: tuple[float, float],
) -> ProbeFit | str:
    """Fit a probe for backbone `lm` on the labelled images of `source`; return it, or why there is none."""
    embeddings, labels = cls_embeddings(lm, source, batch_size, progress, span)
    why = why_no_probe(labels)
    if why is not None:
        return why
    return fit_probe(embeddings, torch.as_tensor(labels), class_names(source, labels), seed)
