"""The capture / intervention mechanism against independent references."""

import copy
from contextlib import contextmanager

import pytest
import torch
from transformers import AttentionInterface

from tests.utils.models import FAMILIES, micro, pixels
from vitscope.vit.models import intervene


def eager_reference(lm, x):
    """Logits and attentions of a copy of the model on transformers' own eager attention."""
    ref = copy.deepcopy(lm.model)
    ref.set_attn_implementation("eager")
    kwargs = {"interpolate_pos_encoding": True} if tuple(x.shape[-2:]) != lm.layout.image_size else {}
    if "dinov2" in lm.model.config.model_type:
        kwargs = {}
    out = ref(pixel_values=x, output_attentions=True, **kwargs)
    return out.logits, out.attentions


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [(32, 32), (32, 48)])
def test_captured_attention_equals_eager_reference(family, size):
    lm = micro(family)
    x = pixels(lm, 3, size)
    with torch.no_grad():
        ref_logits, ref_attn = eager_reference(lm, x)
        with intervene(lm.parts, capture=True) as rec:
            logits = lm.forward(x)
    assert len(rec.attentions) == lm.num_layers == len(ref_attn)
    for layer, probs in rec.attentions.items():
        torch.testing.assert_close(probs, ref_attn[layer], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=0)


def test_capture_of_some_layers_leaves_others_on_sdpa_and_outputs_unchanged():
    lm = micro("vit")
    x = pixels(lm)
    with torch.no_grad():
        plain = lm.forward(x)
        with intervene(lm.parts, capture=[1]) as rec:
            captured = lm.forward(x)
    assert list(rec.attentions) == [1]
    torch.testing.assert_close(captured, plain, atol=1e-5, rtol=0)


def test_sink_receives_each_layer_instead_of_storage():
    lm = micro("deit-distilled")
    seen = []
    with (
        torch.no_grad(),
        intervene(lm.parts, capture=True, sink=lambda layer, p: seen.append((layer, p.sum(-1)))) as rec,
    ):
        lm.forward(pixels(lm))
    assert [layer for layer, _ in seen] == [0, 1]
    assert rec.attentions == {}
    torch.testing.assert_close(seen[0][1], torch.ones_like(seen[0][1]))


@pytest.mark.parametrize("family", ["vit", "dinov2-registers"])
def test_score_sink_gets_query_and_key_whose_softmax_is_the_captured_attention(family):
    lm = micro(family)
    x = pixels(lm)
    seen = {}
    with torch.no_grad():
        plain = lm.forward(x)
        with intervene(lm.parts, capture=True) as rec:
            lm.forward(x)
        with intervene(
            lm.parts, capture=[1], score_sink=lambda layer, q, k, s: seen.update({layer: (q, k, s)})
        ):
            out = lm.forward(x)
    assert list(seen) == [1]
    q, k, scaling = seen[1]
    torch.testing.assert_close(torch.softmax(q @ k.mT * scaling, -1), rec.attentions[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(out, plain)  # the layer kept SDPA: same output


def test_a_sink_and_a_score_sink_together_are_refused():
    lm = micro("vit")
    with pytest.raises(ValueError, match="not both"), intervene(lm.parts, sink=print, score_sink=print):
        pass


def test_hooks_are_removed_after_the_block_even_on_error():
    lm = micro("vit")
    with pytest.raises(RuntimeError, match="boom"), intervene(lm.parts, capture=True, record_residuals=True):
        raise RuntimeError("boom")
    assert all(not hasattr(m, "vitscope_hook") for m in lm.parts.attention)
    assert all(not b._forward_pre_hooks for b in lm.parts.blocks)


@contextmanager
def running_on(lm, name, fn):
    """Run the model itself (same modules) on a test attention function, then restore vitscope's."""
    AttentionInterface.register(name, fn)
    lm.model.set_attn_implementation(name)
    try:
        yield
    finally:
        lm.model.set_attn_implementation("vitscope")


def _zero_layer_attention(layer_module):
    """A separately written attention function whose chosen layer contributes nothing."""
    sdpa = AttentionInterface()["sdpa"]

    def fn(module, query, key, value, attention_mask, **kwargs):
        out, w = sdpa(module, query, key, value, attention_mask, **kwargs)
        return (torch.zeros_like(out) if module is layer_module else out), w

    return fn


@pytest.mark.parametrize("family", ["vit", "dinov2-registers"])
def test_masking_every_head_of_a_layer_removes_that_layers_attention(family):
    lm = micro(family)
    x = pixels(lm)
    gates = torch.ones(1, lm.num_layers, lm.num_heads)
    gates[0, 1] = 0
    with torch.no_grad():
        with running_on(lm, "zero-layer-test", _zero_layer_attention(lm.parts.attention[1])):
            expected = lm.forward(x)
        with intervene(lm.parts, head_gates=gates):
            masked = lm.forward(x)
        plain = lm.forward(x)
    torch.testing.assert_close(masked, expected, atol=1e-5, rtol=0)
    assert (masked - plain).abs().max() > 1e-3


def test_per_sample_head_mask_equals_separate_runs_with_one_mask_each():
    lm = micro("deit-distilled")
    x = pixels(lm, 1).expand(4, -1, -1, -1)
    gates = torch.ones(4, lm.num_layers, lm.num_heads)
    gates[1, 0, 2] = 0
    gates[2, 1, 0] = 0
    gates[3, :, 1] = 0
    with torch.no_grad():
        with intervene(lm.parts, head_gates=gates):
            batched = lm.forward(x)
        for i in range(4):
            with intervene(lm.parts, head_gates=gates[i : i + 1]):
                single = lm.forward(x[i : i + 1])
            torch.testing.assert_close(batched[i : i + 1], single, atol=1e-5, rtol=0)
    assert len({round(float(v), 5) for v in batched[:, 0]}) == 4


def test_gates_given_per_layer_equal_the_full_gate_tensor_and_leave_other_layers_ungated():
    lm = micro("vit")
    x = pixels(lm, 3)
    gates = torch.ones(3, lm.num_layers, lm.num_heads)
    gates[0, 1, 0] = 0
    gates[2, 1, 1] = 0.5
    with torch.no_grad():
        with intervene(lm.parts, head_gates=gates):
            full = lm.forward(x)
        with intervene(lm.parts, head_gates={1: gates[:, 1]}):
            per_layer = lm.forward(x)
        plain = lm.forward(x)
    torch.testing.assert_close(per_layer, full, atol=1e-6, rtol=0)
    torch.testing.assert_close(per_layer[1], plain[1], atol=1e-6, rtol=0)  # its gates are all ones
    assert (per_layer[0] - plain[0]).abs().max() > 1e-4


def _partial_pruning_attention(layer_module, head, rows, cols):
    """Eager attention written out again, zeroing probs[head, rows, cols] on one layer."""

    def fn(module, query, key, value, attention_mask, scaling=None, **kwargs):
        probs = torch.softmax(query @ key.transpose(2, 3) * scaling, dim=-1)
        if module is layer_module:
            probs = probs.clone()
            probs[:, head, rows, cols] = 0
        return (probs @ value).transpose(1, 2), probs

    return fn


@pytest.mark.parametrize(
    ("rows", "cols"),
    [(slice(0, 1), slice(None)), (slice(None), slice(0, 1)), (slice(1, None), slice(1, None))],
    ids=["cls-row", "cls-column", "patch-to-patch"],
)
def test_partial_pruning_zeroes_one_block_of_one_head(rows, cols):
    lm = micro("vit")
    x = pixels(lm)
    T = lm.layout.n_tokens
    scale = torch.ones(1, lm.num_heads, T, T)
    scale[:, 2, rows, cols] = 0
    with torch.no_grad():
        with running_on(lm, "partial-test", _partial_pruning_attention(lm.parts.attention[0], 2, rows, cols)):
            expected = lm.forward(x)
        with intervene(lm.parts, attn_scale={0: scale}):
            pruned = lm.forward(x)
    torch.testing.assert_close(pruned, expected, atol=1e-5, rtol=0)


def test_pruning_the_whole_attention_matrix_equals_a_zero_head_gate():
    lm = micro("dinov2")
    x = pixels(lm)
    T = lm.layout.n_tokens
    scale = torch.ones(1, lm.num_heads, T, T)
    scale[:, 1] = 0
    gates = torch.ones(1, lm.num_layers, lm.num_heads)
    gates[0, 1, 1] = 0
    with torch.no_grad():
        with intervene(lm.parts, attn_scale={1: scale}):
            by_scale = lm.forward(x)
        with intervene(lm.parts, head_gates=gates):
            by_gate = lm.forward(x)
    torch.testing.assert_close(by_scale, by_gate, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_resuming_from_the_cached_residual_stream_equals_the_plain_forward(family):
    lm = micro(family)
    x = pixels(lm, 3, (32, 48))
    with torch.no_grad():
        with intervene(lm.parts, record_residuals=True, record_outputs=[1]) as rec:
            plain = lm.forward(x)
        for layer in range(lm.num_layers):
            resumed = lm.resume(layer, rec.residuals[layer], image_size=(32, 48))
            torch.testing.assert_close(resumed, plain, atol=1e-5, rtol=0)
    assert rec.outputs[1].shape == rec.residuals[0].shape


def test_resumed_pass_with_gates_equals_full_pass_with_gates():
    lm = micro("vit")
    x = pixels(lm, 2)
    gates = torch.ones(2, lm.num_layers, lm.num_heads)
    gates[0, 1, 3] = 0
    with torch.no_grad():
        with intervene(lm.parts, record_residuals=[1]) as rec:
            lm.forward(x)
        with intervene(lm.parts, head_gates=gates):
            full = lm.forward(x)
        resumed = lm.resume(1, rec.residuals[1], head_gates=gates)
    torch.testing.assert_close(resumed, full, atol=1e-5, rtol=0)


def test_gates_carry_gradients_for_taylor_importance():
    lm = micro("vit")
    gates = torch.ones(1, lm.num_layers, lm.num_heads, requires_grad=True)
    with intervene(lm.parts, head_gates=gates):
        lm.forward(pixels(lm)).logsumexp(-1).sum().backward()
    assert gates.grad is not None and gates.grad.abs().sum() > 0


def test_half_precision_capture_matches_eager_to_bfloat16_rounding():
    lm = copy.deepcopy(
        micro("vit")
    )  # the micro models are shared: a round trip through bf16 would round them
    x = pixels(lm).to(torch.bfloat16)
    lm.to("cpu", torch.bfloat16)
    with torch.no_grad():
        _, ref_attn = eager_reference(lm, x)
        with intervene(lm.parts, capture=True) as rec:
            lm.forward(x)
    for layer, probs in rec.attentions.items():
        assert probs.dtype == torch.bfloat16
        torch.testing.assert_close(probs.float(), ref_attn[layer].float(), atol=2e-2, rtol=0)
