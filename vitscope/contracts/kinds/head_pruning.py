"""The `head-pruning` kind: one head pruned partially on one image, in the paper's six modes."""

from pydantic import Field

from vitscope.contracts.kinds.base import MAX_LAYERS, ArraySpec, ImageParams, Kind, Summary
from vitscope.contracts.kinds.head_detail import MAX_IMAGE_INDEX

MAX_HEADS = 256
"""The most heads per layer a head index may name."""

MODES = ("none", "cls_row", "cls_column", "patch_to_patch", "cls_row_column", "whole_head")
"""Partial-pruning modes: which block of one head's attention matrix is zeroed."""


class HeadPruningParams(ImageParams):
    """Prune one head partially on one image: zero the CLS row, the CLS column, the patch-to-patch block,
    both CLS blocks, or the whole head, and read what the model then predicts (a backbone: how far its
    final CLS embedding turns)."""

    image: int = Field(default=0, ge=0, le=MAX_IMAGE_INDEX, description="index of the image in the inputs")
    layer: int = Field(default=0, ge=0, le=MAX_LAYERS, description="layer of the head")
    head: int = Field(default=0, ge=0, le=MAX_HEADS, description="head within the layer")


class HeadPruningSummary(Summary):
    """The head and image, the modes in array order, the class whose probability is reported."""

    image: int
    layer: int
    head: int
    modes: list[str] = Field(description="partial-pruning modes, in the order of the arrays' first axis")
    label: int = Field(description="the image's label, -1 unknown")
    target: int | None = Field(
        description="the class whose probability `target_prob` gives: the label when it is one of the "
        "model's classes, else the unpruned model's top-1 (None for a backbone)"
    )
    left_out: dict[str, str] = Field(description="arrays not in the result, each with why")


KIND = Kind(
    name="head-pruning",
    title="Head pruning",
    help="one head pruned partially on one image in six modes: top-5 and class probability, or a backbone's "
    "CLS cosine (light, submitted per head by the head-detail page)",
    params=HeadPruningParams,
    summary=HeadPruningSummary,
    results={
        "cls_cosine": ArraySpec(
            ("modes",),
            "float",
            "cosine of the final CLS embedding to the unpruned one, per mode (backbone)",
            optional=True,
        ),
        "target_prob": ArraySpec(
            ("modes",), "float", "probability of the target class per mode (classifier)", optional=True
        ),
        "top5_idx": ArraySpec(
            ("modes", "k"), "int", "top classes per mode (k = 5, or every class when fewer)", optional=True
        ),
        "top5_prob": ArraySpec(("modes", "k"), "float", optional=True),
    },
    run="vitscope.vit.analysis.head_detail:run_pruning",
    page="/head",
    url_key="hp",
    order=91,
    default_launch=False,
    interactive=True,
)
