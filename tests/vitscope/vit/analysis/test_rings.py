"""Chebyshev rings and per-layer attention reductions on hand-built attention."""

import math

import pytest
import torch

from vitscope.vit.analysis.rings import (
    RingGeometry,
    centre_rings,
    patch_rings,
    reduce_attention,
    ring_count,
    ring_entropy,
)
from vitscope.vit.models import TokenLayout

PATCH = 16
LAYOUT = TokenLayout(("cls",), (3, 3), PATCH, (48, 48))  # T = 10: CLS + 9 patches
T, P = LAYOUT.n_tokens, LAYOUT.n_patches


@pytest.fixture(scope="module")
def geo():
    return RingGeometry.build(LAYOUT)


def chebyshev_neighbours(p):
    """Patches one hop from patch p on the 3x3 grid, written out by coordinates."""
    r, c = divmod(p, 3)
    return [q for q in range(P) if q != p and max(abs(q // 3 - r), abs(q % 3 - c)) == 1]


def test_pairs_per_ring_on_3x3_match_a_hand_count(geo):
    # ring 0: 9 self-pairs; ring 1: corners 3, edges 5, centre 8 neighbours -> 4*3 + 4*5 + 8 = 40
    assert geo.divisors[: geo.rings].tolist() == [9, 40, 32]
    torch.testing.assert_close(geo.ring_sizes(), torch.tensor([1, 40 / 9, 32 / 9]))
    assert patch_rings((3, 3))[0].tolist() == [0, 1, 2, 1, 1, 2, 2, 2, 2]


@pytest.mark.parametrize(
    ("grid", "expected"),
    [
        ((3, 3), [1, 1, 1, 1, 0, 1, 1, 1, 1]),
        ((4, 4), [1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1]),
        ((2, 4), [1, 0, 0, 1, 1, 0, 0, 1]),
    ],
)
def test_centre_rings_put_the_central_patch_or_block_in_ring_0(grid, expected):
    assert centre_rings(grid).tolist() == expected
    assert ring_count(grid)[1] == max(expected) + 1


def test_identity_attention_puts_all_strength_in_ring_0(geo):
    stats = reduce_attention(torch.eye(T)[None, None], geo)
    torch.testing.assert_close(stats.ring_patch[0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert ring_entropy(stats.ring_patch).item() == 0
    assert stats.distance_px.item() == 0
    # only the CLS query attends to a prefix token (itself)
    torch.testing.assert_close(stats.sink_share[0, 0], torch.tensor(1 / T))


def test_uniform_attention_gives_equal_strength_per_ring_and_the_hand_computed_distance(geo):
    stats = reduce_attention(torch.full((1, 1, T, T), 1 / T), geo)
    torch.testing.assert_close(stats.ring_patch[0, 0], torch.full((3,), 1 / T))
    torch.testing.assert_close(stats.ring_cls[0, 0], torch.full((2,), 1 / T))
    torch.testing.assert_close(ring_entropy(stats.ring_patch)[0, 0], torch.tensor(math.log(3)))
    torch.testing.assert_close(stats.sink_share[0, 0], torch.tensor(1 / T))
    # ordered pairs with |row offset| = a on 3 rows: a=0: 3, a=1: 4, a=2: 2 (same for columns)
    n = {0: 3, 1: 4, 2: 2}
    mean = sum(n[a] * n[b] * math.hypot(a, b) for a in n for b in n) / 81 * PATCH
    torch.testing.assert_close(stats.distance_px[0, 0], torch.tensor(mean))


def test_attention_spread_over_one_hop_neighbours_gives_9_over_40_at_ring_1(geo):
    probs = torch.zeros(1, 1, T, T)
    probs[0, 0, 0, 0] = 1
    for p in range(P):
        for q in chebyshev_neighbours(p):
            probs[0, 0, 1 + p, 1 + q] = 1 / len(chebyshev_neighbours(p))
    stats = reduce_attention(probs, geo)
    torch.testing.assert_close(stats.ring_patch[0, 0], torch.tensor([0.0, 9 / 40, 0.0]))
    assert stats.sink_share[0, 0].item() == pytest.approx(1 / T)


def test_attention_to_the_next_patch_is_one_patch_away_in_pixels(geo):
    probs = torch.zeros(1, 1, T, T)
    probs[0, 0, 0, 0] = 1
    for p in range(P):
        q = p + 1 if p % 3 < 2 else p - 1  # the right neighbour, or the left one on the last column
        probs[0, 0, 1 + p, 0] = 0.5  # half to CLS: distance is renormalised over patch keys
        probs[0, 0, 1 + p, 1 + q] = 0.5
    stats = reduce_attention(probs, geo)
    assert stats.distance_px.item() == pytest.approx(PATCH)
    assert stats.sink_share.item() == pytest.approx((1 + 0.5 * P) / T)


def test_cls_attending_to_the_central_patch_is_all_in_central_ring(geo):
    probs = torch.full((1, 2, T, T), 1 / T)
    probs[0, 1, 0] = 0
    probs[0, 1, 0, 1 + 4] = 1  # head 1: CLS looks only at the centre patch
    stats = reduce_attention(probs, geo)
    torch.testing.assert_close(stats.ring_cls[0, 1], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(stats.ring_cls[0, 0], torch.full((2,), 1 / T))


@pytest.mark.parametrize("rings", [2, 3, 14])
def test_entropy_of_a_uniform_ring_profile_is_ln_rings(rings):
    profile = torch.full((2, rings), 0.37)
    torch.testing.assert_close(ring_entropy(profile), torch.full((2,), math.log(rings)))


def test_entropy_of_an_empty_profile_is_zero_not_nan():
    assert ring_entropy(torch.zeros(4)).item() == 0


def test_register_tokens_are_prefix_not_patches():
    layout = TokenLayout(("cls", "register", "register"), (2, 2), 8, (16, 16))
    geo = RingGeometry.build(layout)
    probs = torch.zeros(1, 1, 7, 7)
    probs[..., 1] = 0.75  # every query gives 3/4 to the first register
    probs[..., 3:] = 0.0625  # and 1/16 to each of the 4 patches
    stats = reduce_attention(probs, geo)
    assert stats.sink_share.item() == pytest.approx(0.75)
    torch.testing.assert_close(stats.ring_patch[0, 0], torch.full((2,), 0.0625))
