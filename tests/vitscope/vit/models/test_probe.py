"""A backbone with a probe head: forward and resume return the head's logits."""

import pytest
import torch

from tests.utils.models import micro, micro_backbone, pixels
from vitscope.vit.analysis.precision import model_in
from vitscope.vit.models import intervene
from vitscope.vit.models.probe import LinearHead, probe_head, with_probe


def head(width=64, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return LinearHead(
        torch.randn(classes, width, generator=g), torch.randn(classes, generator=g), ("a", "b", "c")
    )


def test_micro_backbone_is_the_micro_classifier_without_its_head():
    lm, bb = micro("vit"), micro_backbone("vit")
    assert lm.classifier and not bb.classifier and bb.labels == []
    assert bb.model.config.architectures == ["ViTModel"] and (bb.mean, bb.std) == (lm.mean, lm.std)
    x = pixels(bb, 3)
    with torch.no_grad():
        torch.testing.assert_close(bb.features(x), lm.features(x), rtol=0, atol=0)
        torch.testing.assert_close(bb.forward(x), lm.features(x)[:, 0], rtol=0, atol=0)


def test_probed_forward_and_resume_return_the_heads_logits():
    bb, h = micro_backbone("vit"), head()
    probed = with_probe(bb, h)
    x = pixels(bb, 2)
    assert probed.labels == ["a", "b", "c"] and not probed.classifier
    assert torch.equal(probe_head(probed).weight, h.weight)
    with torch.no_grad(), intervene(bb.parts, record_residuals=[1]) as rec:
        embedding = bb.forward(x)
    hidden, gates = rec.residuals[1], torch.zeros(1, bb.num_layers, bb.num_heads)
    with torch.no_grad():
        torch.testing.assert_close(probed.forward(x), embedding @ h.weight.T + h.bias)
        resumed = probed.resume(1, hidden, head_gates=gates)
        torch.testing.assert_close(resumed, h(bb.resume(1, hidden, head_gates=gates)))
        assert not torch.allclose(resumed, probed.forward(x))  # the gates went through the resumed pass


def test_a_bfloat16_copy_keeps_a_float32_head():
    probed = with_probe(micro_backbone("vit"), head())
    half = model_in(probed, torch.bfloat16)
    assert half.dtype == torch.bfloat16 and half.head.weight.dtype == torch.float32
    with torch.no_grad():
        logits = half.forward(half.preprocess(torch.zeros(1, 32, 32, 3, dtype=torch.uint8)))
    assert logits.dtype == torch.float32 and probe_head(micro_backbone("vit")) is None


def test_a_probe_fits_only_a_backbone_of_its_width():
    with pytest.raises(ValueError, match="has a classifier already"):
        with_probe(micro("vit"), head())
    with pytest.raises(ValueError, match="reads 32-d embeddings"):
        with_probe(micro_backbone("vit"), head(width=32))
