"""The fused ring kernel against the materialised reduction (on CUDA, else in Triton's interpreter)."""

import copy

import numpy as np
import pytest
import torch

from tests.utils.models import micro
from vitscope.vit.analysis import attention_profile, fused_rings
from vitscope.vit.analysis.rings import RingGeometry, reduce_attention
from vitscope.vit.models import TokenLayout

pytest.importorskip("triton")

FIELDS = ("ring_patch", "ring_cls", "distance_px", "sink_share")


DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # tests/conftest.py: CPU is interpreted


LAYOUTS = {
    "cls 3x3": TokenLayout(("cls",), (3, 3), 16, (48, 48)),
    "cls+distillation 4x5": TokenLayout(("cls", "distillation"), (4, 5), 16, (64, 80)),
    "cls+registers 6x6": TokenLayout(("cls", "register", "register"), (6, 6), 14, (84, 84)),
}


HALF = [
    torch.float16,
    pytest.param(
        torch.bfloat16,
        marks=pytest.mark.skipif(
            DEVICE.type == "cpu", reason="Triton's interpreter mis-multiplies bfloat16 tl.dot"
        ),
    ),
]


@pytest.mark.parametrize("name", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, *HALF])
def test_fused_reduction_equals_the_materialised_one(name, dtype):
    layout = LAYOUTS[name]
    gen = torch.Generator().manual_seed(0)
    # (B, T, H, d) transposed to (B, H, T, d), as ViT attention hands them over: strided, not contiguous;
    # 7 x 3 = 21 (image, head) pairs: one full group of 16 and one partial
    query = torch.randn(7, layout.n_tokens, 3, 24, generator=gen).transpose(1, 2).to(DEVICE, dtype)
    key = (2 * torch.randn(7, layout.n_tokens, 3, 24, generator=gen)).transpose(1, 2).to(DEVICE, dtype)
    scaling = 24**-0.5
    probs = torch.softmax(query.double() @ key.double().mT * scaling, -1)
    expected = reduce_attention(probs, RingGeometry.build(layout, DEVICE, torch.float64))
    got = fused_rings.reduce_scores(query, key, scaling, RingGeometry.build(layout, DEVICE, dtype))
    # half precision: binned as float16 on the tensor cores (2^-11 relative per probability)
    tol = {} if dtype == torch.float32 else {"rtol": 2e-3, "atol": 1e-4}
    for field in FIELDS:
        torch.testing.assert_close(getattr(got, field), getattr(expected, field).float(), msg=field, **tol)


def test_peaked_scores_do_not_overflow_and_put_each_patch_on_itself():
    layout = LAYOUTS["cls 3x3"]
    # scores of 200^2 on the diagonal: a softmax without the running maximum overflows
    tokens = torch.eye(layout.n_tokens, device=DEVICE)[None, None] * 200
    stats = fused_rings.reduce_scores(tokens, tokens, 1.0, RingGeometry.build(layout, DEVICE))
    # exact under the interpreter; 1 - 6e-5 on the H200 (torch 2.11, Triton 3.6), within the 1e-4 allowed
    torch.testing.assert_close(stats.ring_patch[0, 0].cpu(), torch.tensor([1.0, 0.0, 0.0]), atol=1e-4, rtol=0)
    assert stats.distance_px.item() == 0


@pytest.mark.parametrize("family", ["vit", "deit-distilled", "dinov2-registers"])
def test_profile_through_the_fused_kernel_equals_the_materialised_profile(family):
    lm = copy.deepcopy(micro(family)).to(DEVICE)  # the micro models are shared: move a copy
    pixels = lm.preprocess(np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    geo = RingGeometry.build(lm.layout, lm.device, lm.dtype)
    results = []
    for fused in (False, True):
        acc = attention_profile.ProfileAccumulator(geo, lm.num_layers, lm.num_heads, lm.device)
        attention_profile.profile_batch(lm, pixels, acc, fused=fused)
        results.append(attention_profile.profile_result(acc))
    materialised, fused_result = results
    for name, value in materialised.arrays.items():
        np.testing.assert_allclose(fused_result.arrays[name], value, atol=1e-5, rtol=1e-4, err_msg=name)


def test_available_on_cpu_only_under_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert fused_rings.available(torch.device("cpu"))
    monkeypatch.delenv("TRITON_INTERPRET")
    assert not fused_rings.available(torch.device("cpu"))
