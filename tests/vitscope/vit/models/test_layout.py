import pytest
import torch

from tests.utils.models import FAMILIES, micro, pixels
from vitscope.vit.models import intervene
from vitscope.vit.models.layout import TokenLayout

EXPECTED_PREFIX = {
    "vit": ("cls",),
    "deit": ("cls",),
    "deit-distilled": ("cls", "distillation"),
    "dinov2": ("cls",),
    "dinov2-registers": ("cls", "register", "register", "register", "register"),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_layout_names_prefix_tokens_of_each_family(family):
    lm = micro(family)
    assert lm.layout.prefix_roles == EXPECTED_PREFIX[family]
    assert lm.layout.grid == (4, 4)
    assert lm.layout.image_size == (32, 32)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [(32, 32), (32, 48), (48, 24)])
def test_layout_matches_attention_shape_for_square_and_non_square_inputs(family, size):
    lm = micro(family)
    layout = lm.layout_for(size)
    assert layout.grid == (size[0] // 8, size[1] // 8)
    with torch.no_grad(), intervene(lm.parts, capture=[0]) as rec:
        lm.forward(pixels(lm, 1, size))
    assert rec.attentions[0].shape[-1] == layout.n_tokens


def test_to_grid_and_patches_follow_row_major_order():
    layout = TokenLayout(("cls", "register"), (2, 3), 4, (8, 12))
    tokens = torch.arange(layout.n_tokens)
    patches = layout.patches(tokens, dim=0)
    assert patches.tolist() == [2, 3, 4, 5, 6, 7]
    assert layout.to_grid(patches).tolist() == [[2, 3, 4], [5, 6, 7]]
    assert layout.patch_centers()[4].tolist() == [6.0, 6.0]


def test_layout_refuses_sizes_that_are_not_patch_multiples():
    layout = TokenLayout(("cls",), (2, 2), 8, (16, 16))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        layout.with_image_size((20, 16))
