"""The `head-importance` kind: parameters, result schema and summary."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vitscope.contracts.kinds.base import MAX_SEED, ArraySpec, ImageParams, Kind, Summary


class HeadImportanceParams(ImageParams):
    """Exact single-head ablation over a dataset and a Taylor estimate (nothing depends on a selected head:
    partial pruning of one head on one image is the light `head-pruning` kind).

    A classifier is scored by its classes; a backbone task-free (how far its final features move) and,
    when the images are labelled, by the classes of a linear probe fitted on its CLS embeddings.
    """

    dtype: Literal["float32", "bfloat16"] = Field(
        default="float32",
        description="precision of the resumed ablation passes (the bulk of the work); the clean pass "
        "and gradients always run in float32",
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
    probe: bool = Field(
        default=True,
        description="for a model without a classifier and labelled images: fit a linear probe on the CLS "
        "embeddings of a seeded half of them and score the class metrics through it",
    )
    seed: int = Field(
        default=0,
        ge=0,
        le=MAX_SEED,
        description="seed of the probe's train/test split and of the task-free Taylor estimate's random vectors",
    )


class ProbeSummary(BaseModel):
    """The linear probe the class metrics of a backbone come from."""

    model_config = ConfigDict(extra="forbid")

    held_out_accuracy: float = Field(description="top-1 accuracy on the labelled images it was not fitted on")
    train_accuracy: float = Field(description="top-1 accuracy on the images it was fitted on")
    train_images: int
    test_images: int
    classes: list[str] = Field(description="the probe's classes, which the labels index")
    l2: float = Field(description="L2 penalty of the logistic regression (standardised features)")
    steps: int = Field(description="L-BFGS iterations")
    seed: int = Field(description="seed of the stratified train/test split")


class HeadImportanceSummary(Summary):
    """What the heads were scored by, dataset size, base accuracy, how well Taylor ranks the heads."""

    images: int
    objective: Literal["classifier", "probe", "task-free"] = Field(
        description="where the class metrics come from: the model's classifier or a linear probe; "
        "task-free: none, only how far the final features move (also computed alongside a probe)"
    )
    metrics: list[str] = Field(description="the per-head (L, H) metrics in the result")
    left_out: dict[str, str] = Field(description="per-head metrics not in the result, each with why")
    probe: ProbeSummary | None = Field(description="the probe, when the class metrics come from one")
    labelled: int = Field(description="images with a known label that the class metrics use")
    accuracy: float | None = Field(
        description="top-1 accuracy of the unpruned model on the labelled images (of a probe: on all of "
        "them, its training half included; see probe.held_out_accuracy)"
    )
    accuracy_drop: list[list[float]] | None = Field(
        description="(L, H) as nested lists; None without classes"
    )
    label_names: list[str]
    dtype: str
    rechecked: int = Field(description="ablated images re-run in float32 for a near tie")
    spearman: float | None = Field(
        description="Spearman of the Taylor estimate against its exact metric: the loss change with "
        "classes, else the CLS cosine drop"
    )
    spearman_detail: dict[str, float | None] = Field(
        description="Spearman of each estimate (normalised per layer; `_raw`: not) against each exact "
        "metric: the loss estimate against the class metrics, the task-free one against cls_cosine_drop "
        "and patch_change"
    )


KIND = Kind(
    name="head-importance",
    title="Head importance",
    help="exact single-head ablation over a dataset (accuracy, probability, loss; for a backbone how far its "
    "features move), Taylor",
    params=HeadImportanceParams,
    summary=HeadImportanceSummary,
    results={
        "accuracy_drop": ArraySpec(
            ("L", "H"), "float", "top-1 accuracy lost when the head is zeroed (with classes)", optional=True
        ),
        "prob_drop": ArraySpec(
            ("L", "H"), "float", "mean drop of the target-class probability (with classes)", optional=True
        ),
        "loss_change": ArraySpec(
            ("L", "H"), "float", "mean change of the cross-entropy (with classes)", optional=True
        ),
        "layer_impact": ArraySpec(("L", "H"), "float", "relative change of the ablated layer's output"),
        "taylor": ArraySpec(
            ("L", "H"), "float", "loss-gradient estimate, normalised per layer (with classes)", optional=True
        ),
        "taylor_raw": ArraySpec(("L", "H"), "float", "loss-gradient estimate, raw", optional=True),
        "cls_cosine_drop": ArraySpec(
            ("L", "H"),
            "float",
            "mean 1 - cos of the final CLS embedding to the clean one (backbone)",
            optional=True,
        ),
        "patch_change": ArraySpec(
            ("L", "H"),
            "float",
            "mean ||final patch features - clean||_F / ||clean||_F (backbone)",
            optional=True,
        ),
        "embedding_taylor": ArraySpec(
            ("L", "H"),
            "float",
            "task-free second-order estimate, normalised per layer (backbone)",
            optional=True,
        ),
        "embedding_taylor_raw": ArraySpec(
            ("L", "H"), "float", "task-free estimate of cls_cosine_drop, raw (backbone)", optional=True
        ),
        "prob_after": ArraySpec(
            ("N", "L", "H"), "float", "target probability after zeroing each head", optional=True
        ),
        "cls_cosine_after": ArraySpec(
            ("N", "L", "H"),
            "float",
            "cosine of the CLS embedding with each head zeroed to the clean one",
            optional=True,
        ),
        "prob_base": ArraySpec(("N",), "float", "target probability of the unpruned model", optional=True),
        "labels": ArraySpec(("N",), "int", "label per image, -1 unknown (with classes)", optional=True),
        "predictions": ArraySpec(("N",), "int", "top-1 class of the unpruned model", optional=True),
    },
    run="vitscope.vit.analysis.head_importance:run",
    page="/heads",
    url_key="hi",
    order=0,
)
