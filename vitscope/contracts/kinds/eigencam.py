"""Parameters of the `eigencam` analysis."""

from typing import Any, Literal

from pydantic import Field

from vitscope.contracts.kinds.base import ArraySpec, ImageParams, Kind, Summary

SignRule = Literal["skew", "extreme", "norm"]


class EigenCamParams(ImageParams):
    """Eigen-CAM on every layer (or `layers`), with baselines and the randomized-weights check."""

    layers: tuple[int, ...] | None = Field(default=None, description="layers to map; all when omitted")
    baselines: bool = Field(default=True, description="also compute attention rollout and Grad-CAM")
    sanity_check: bool = Field(default=True, description="also map a random-weights copy and rank-correlate")
    second_component: bool = Field(default=False, description="also return the second principal component")
    batch_size: int = Field(default=32, ge=1, le=1024)
    sign_rule: SignRule = Field(
        default="skew",
        description=(
            "how the arbitrary sign of the principal component is fixed: 'skew' makes the heavier "
            "tail positive (the smaller region, usually the object), 'extreme' makes |max| >= |min| "
            "(pytorch-grad-cam's sign-corrected variant), 'norm' correlates with the patch-token norm"
        ),
    )
    relu: bool = Field(
        default=True,
        description=(
            "clip the oriented projection at 0 before min-max scaling, as pytorch-grad-cam does; "
            "false keeps the negative side (min-max of the whole projection)"
        ),
    )
    gradcam_layer: int | None = Field(
        default=None, description="block whose output Grad-CAM uses; default the layer before the last"
    )
    random_seed: int = Field(
        default=0, ge=0, description="seed of the random-weights copy for the sanity check"
    )


class EigenCamSummary(Summary):
    """Labels, top-5, what was computed, and the randomized-weights rank correlations."""

    images: int
    labels: list[str | None]
    label_names: list[str]
    top5: list[list[dict[str, Any]]]
    grid: list[int]
    image_size: list[int]
    prefix_tokens: list[str]
    layers: list[int]
    components: int
    sign_rule: str
    relu: bool
    gradcam_layer: int | None
    random_seed: int | None = None
    rank_corr_by_layer: list[float | None] | None = None
    rank_corr_rollout: float | None = None
    rank_corr_gradcam: float | None = None


KIND = Kind(
    name="eigencam",
    title="Eigen-CAM",
    help="Eigen-CAM of every layer with rollout, Grad-CAM and the randomized-weights check",
    params=EigenCamParams,
    summary=EigenCamSummary,
    results={
        "images": ArraySpec(("N", "height", "width", 3), "uint8", "the images as analysed"),
        "cam": ArraySpec(("N", "L", "h", "w"), "float", "first principal component per layer, in [0, 1]"),
        "cam2": ArraySpec(("N", "L", "h", "w"), "float", "second component", optional=True),
        "rollout": ArraySpec(("N", "h", "w"), "float", optional=True),
        "gradcam": ArraySpec(("N", "h", "w"), "float", optional=True),
        "cam_random": ArraySpec(("N", "L", "h", "w"), "float", "maps of a randomized copy", optional=True),
        "rank_corr": ArraySpec(("N", "L"), "float", "trained against randomized, per layer", optional=True),
        "rank_corr_rollout": ArraySpec(("N",), "float", optional=True),
        "rank_corr_gradcam": ArraySpec(("N",), "float", optional=True),
        "top5_idx": ArraySpec(("N", 5), "int"),
        "top5_prob": ArraySpec(("N", 5), "float"),
        "labels": ArraySpec(("N",), "int", "label per image, -1 unknown"),
    },
    run="vitscope.vit.analysis.eigencam:run",
    page="/cam",
    url_key="job",
    order=3,
    example_inputs={"dataset": "synthscenes:8:seed=0"},
)
