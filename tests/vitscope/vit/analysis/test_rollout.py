"""Attention rollout against a two-layer example computed by hand, and on real models."""

import pytest
import torch

from tests.utils.models import FAMILIES, micro, pixels
from vitscope.vit.analysis.rollout import Rollout, attention_rollout, residual_attention
from vitscope.vit.models import intervene
from vitscope.vit.models.layout import TokenLayout

# one CLS token and a 1 x 2 patch grid; two heads per layer
LAYOUT = TokenLayout(("cls",), (1, 2), 1, (1, 2))
LAYER0 = torch.tensor(
    [
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]],
    ]
)
LAYER1 = torch.tensor(
    [
        [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    ]
)


def test_residual_attention_averages_heads_and_adds_the_identity():
    # mean of the heads: [[.5, .25, .25], [.5, .5, 0], [.5, 0, .5]]; then 0.5 * mean + 0.5 * I
    expected = torch.tensor([[0.75, 0.125, 0.125], [0.25, 0.75, 0.0], [0.25, 0.0, 0.75]])
    torch.testing.assert_close(residual_attention(LAYER0[None])[0], expected)


def test_two_layer_rollout_equals_the_hand_computed_product():
    sink = Rollout()
    sink(0, LAYER0[None])
    sink(1, LAYER1[None])
    joint = sink.joint
    assert joint is not None
    # A'1 CLS row = [.5, .5, 0]; times A'0: .5 * [.75, .125, .125] + .5 * [.25, .75, 0]
    torch.testing.assert_close(joint[0, 0], torch.tensor([0.5, 0.4375, 0.0625]))
    # the map drops the CLS column and keeps the grid: (B, 1, 2)
    torch.testing.assert_close(sink.cls_map(LAYOUT), torch.tensor([[[0.4375, 0.0625]]]))
    # the other order (A'0 A'1) would give [.375, .5, .125]: the first layer must act first
    torch.testing.assert_close(joint.sum(-1), torch.ones(1, 3))


def test_layers_must_arrive_in_order():
    sink = Rollout()
    sink(1, LAYER0[None])
    with pytest.raises(ValueError, match="after layer 1"):
        sink(0, LAYER1[None])


@pytest.mark.parametrize("family", FAMILIES)
def test_rollout_on_the_fly_equals_rollout_of_stored_attention(family):
    lm = micro(family)
    x = pixels(lm, 2)
    with torch.no_grad(), intervene(lm.parts, capture=True) as rec:
        lm.forward(x)
    eye = torch.eye(lm.layout.n_tokens)
    joint = eye
    for layer in range(lm.num_layers):
        step = 0.5 * rec.attentions[layer].mean(1) + 0.5 * eye
        joint = (step / step.sum(-1, keepdim=True)) @ joint
    n = lm.layout.n_prefix
    expected = joint[:, 0, n:].reshape(2, 4, 4)
    torch.testing.assert_close(attention_rollout(lm, x), expected)
