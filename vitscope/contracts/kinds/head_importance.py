"""Parameters of the `head-importance` analysis."""

from typing import Annotated, Literal

from pydantic import Field

from vitscope.contracts.kinds.base import ArraySpec, ImageParams, Kind, Summary


class HeadImportanceParams(ImageParams):
    """Exact single-head ablation over a dataset, partial pruning of one head, Taylor estimate."""

    dtype: Literal["float32", "bfloat16"] = Field(
        default="float32",
        description="precision of the resumed ablation passes (the bulk of the work); the clean pass, "
        "gradients and partial pruning always run in float32",
    )
    batch_size: int = Field(default=64, ge=1, le=4096, description="images per clean pass")
    chunk_size: int = Field(
        default=1024,
        ge=1,
        le=65536,
        description="ablated copies (image x head) per resumed pass; bounds memory",
    )
    recheck: bool = Field(
        default=True,
        description="with bfloat16, re-run in float32 every ablated image whose top-1 decision is a "
        "near tie, so accuracy drops equal the float32 ones",
    )
    taylor: bool = Field(default=True, description="also compute the one-backward-pass gradient estimate")
    partial_layer: int | None = Field(
        default=None,
        ge=0,
        description="layer of the head to prune partially (default: the most important head)",
    )
    partial_head: int | None = Field(
        default=None,
        ge=0,
        description="head to prune partially (default: the most important head of the layer)",
    )
    partial_images: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        default=(0,), max_length=64, description="dataset indices of the images pruned partially"
    )


class HeadImportanceSummary(Summary):
    """Dataset size, base accuracy, how well Taylor ranks the heads, which head was pruned partially."""

    images: int
    labelled: int = Field(description="images with a known label")
    accuracy: float | None = Field(description="top-1 accuracy of the unpruned model on the labelled images")
    accuracy_drop: list[list[float]] = Field(description="(L, H) as nested lists")
    label_names: list[str]
    dtype: str
    rechecked: int = Field(description="ablated images re-run in float32 for a near tie")
    spearman: float | None = Field(description="Spearman of Taylor against the exact loss change")
    spearman_detail: dict[str, float | None]
    modes: list[str] = Field(description="partial-pruning modes, in the order of the partial_* arrays")
    partial_layer: int
    partial_head: int
    partial_images: list[int]


KIND = Kind(
    name="head-importance",
    title="Head importance",
    help="exact single-head ablation over a dataset (accuracy, probability, loss), partial pruning, Taylor",
    params=HeadImportanceParams,
    summary=HeadImportanceSummary,
    results={
        "accuracy_drop": ArraySpec(("L", "H"), "float", "top-1 accuracy lost when the head is zeroed"),
        "prob_drop": ArraySpec(("L", "H"), "float", "mean drop of the target-class probability"),
        "loss_change": ArraySpec(("L", "H"), "float", "mean change of the cross-entropy"),
        "layer_impact": ArraySpec(("L", "H"), "float", "relative change of the ablated layer's output"),
        "taylor": ArraySpec(("L", "H"), "float", "gradient estimate, normalised per layer", optional=True),
        "taylor_raw": ArraySpec(("L", "H"), "float", "gradient estimate, raw", optional=True),
        "prob_after": ArraySpec(("N", "L", "H"), "float", "target probability after zeroing each head"),
        "prob_base": ArraySpec(("N",), "float", "target probability of the unpruned model"),
        "labels": ArraySpec(("N",), "int", "label per image, -1 unknown"),
        "predictions": ArraySpec(("N",), "int", "top-1 class of the unpruned model"),
        "partial_top5_idx": ArraySpec(
            ("modes", "I", 5), "int", "top-5 classes per partial mode", optional=True
        ),
        "partial_top5_prob": ArraySpec(("modes", "I", 5), "float", optional=True),
        "partial_target_prob": ArraySpec(("modes", "I"), "float", optional=True),
    },
    run="vitscope.vit.analysis.head_importance:run",
    page="/heads",
    url_key="hi",
    order=0,
)
