"""The linear probe: a deterministic logistic regression, its split, when none is fitted."""

import numpy as np
import pytest
import torch

from tests.utils.models import micro_backbone
from vitscope.vit.analysis import probe
from vitscope.vit.data.inputs import EncodedSource, SynthSource
from vitscope.vit.data.synthscenes import CATEGORIES


def clusters(n_per_class=20, classes=3, width=16, seed=0):
    """Linearly separable features: one Gaussian blob per class, centres 8 standard deviations apart."""
    g = torch.Generator().manual_seed(seed)
    centres = 8 * torch.eye(classes, width)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return centres[labels] + torch.randn(len(labels), width, generator=g) + 5.0, labels


def test_probe_on_separable_features_is_accurate_on_held_out_images_and_deterministic():
    features, labels = clusters()
    first = probe.fit_probe(features, labels, ["a", "b", "c"], seed=0)
    second = probe.fit_probe(features, labels, ["a", "b", "c"], seed=0)
    assert first.held_out_accuracy >= 0.95 and first.train_accuracy == 1.0
    assert (first.train_images, first.test_images) == (30, 30)
    assert torch.equal(first.head.weight, second.head.weight) and torch.equal(
        first.head.bias, second.head.bias
    )
    other = probe.fit_probe(features, labels, ["a", "b", "c"], seed=1)
    assert not torch.equal(first.head.weight, other.head.weight)  # another split, another fit


def test_probe_head_reads_raw_features_with_the_standardisation_folded_in():
    features, labels = clusters(width=4)
    weight, bias = probe.fit_logistic(features, labels, 3)
    x = features.double()
    z = (x - x.mean(0)) / x.std(0, correction=0)
    zw, zb = probe.fit_logistic(z, labels, 3)  # already standardised: its own scaling is the identity
    torch.testing.assert_close(x @ weight.T + bias, z @ zw.T + zb, rtol=1e-6, atol=1e-6)


def test_probe_fit_is_at_the_minimum_of_the_regularised_loss():
    features, labels = clusters(n_per_class=6, width=5)
    weight, bias = probe.fit_logistic(features, labels, 4)  # class 3 is absent: its bias stays finite
    logits = features.double() @ weight.T + bias
    assert torch.isfinite(bias).all() and logits.argmax(-1).eq(labels).all()
    x = features.double()
    mean, std = x.mean(0), x.std(0, correction=0)
    zw = (weight * std).requires_grad_()  # back to the standardised problem the penalty is on
    zb = (bias + weight @ mean).requires_grad_()
    loss = torch.nn.functional.cross_entropy(((x - mean) / std) @ zw.T + zb, labels)
    loss = loss + 0.5 * probe.L2 * (zw.square().sum() + zb.square().sum())
    grads = torch.autograd.grad(loss, [zw, zb])
    assert max(float(g.abs().max()) for g in grads) < 1e-7


def test_split_is_seeded_stratified_and_disjoint():
    labels = np.array([0, 0, 0, 1, 1, 2, 1, 0, 2, 2, 2])
    train, test = probe.stratified_split(labels, seed=4)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))
    assert [int((labels[train] == c).sum()) for c in range(3)] == [2, 2, 2]  # half of each class, rounded up
    again, _ = probe.stratified_split(labels, seed=4)
    assert np.array_equal(train, again)
    assert any(not np.array_equal(train, probe.stratified_split(labels, seed=s)[0]) for s in range(5, 10))


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ([-1] * 10, "no labels for a probe"),
        ([2] * 10 + [-1], "all of one class"),
        ([0, 1, 0, 1, -1, -1], "only 4 images are labelled"),
        (list(range(9)), "no class has two labelled images"),
    ],
)
def test_no_probe_without_enough_labelled_images_of_two_classes(labels, reason):
    assert reason in probe.why_no_probe(np.array(labels))


def test_enough_labelled_images_of_two_classes_fit_a_probe():
    assert probe.why_no_probe(np.array([0, 1, 0, 1, 0, 1, 0, 1, -1])) is None


def test_class_names_come_from_the_source_else_are_numbered():
    assert probe.class_names(SynthSource(4), np.array([0, 1])) == list(CATEGORIES)
    named = EncodedSource([], None, [], class_names=["cat", "dog"])
    assert probe.class_names(named, np.array([0, 1])) == ["cat", "dog"]
    assert probe.class_names(EncodedSource([], None, []), np.array([2, 0])) == [
        "class 0",
        "class 1",
        "class 2",
    ]


def test_probe_on_a_source_embeds_only_its_labelled_images():
    lm = micro_backbone("vit")
    embeddings, labels = probe.cls_embeddings(lm, SynthSource(10), 4, lambda *_: None, (0, 1))
    assert embeddings.shape == (10, lm.model.config.hidden_size) and labels.tolist() == list(
        next(SynthSource(10).batches(10, (32, 32))).labels
    )
    with torch.no_grad():
        pixels = lm.preprocess(next(SynthSource(10).batches(10, (32, 32))).images)
        torch.testing.assert_close(embeddings, lm.forward(pixels))
    fit = probe.probe_on(lm, SynthSource(16), 8, 0, lambda *_: None, (0, 1))
    assert isinstance(fit, probe.ProbeFit) and fit.head.labels == CATEGORIES
    assert probe.probe_on(lm, SynthSource(3), 8, 0, lambda *_: None, (0, 1)).startswith("the model has no")
