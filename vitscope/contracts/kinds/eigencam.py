"""Parameters of the `eigencam` analysis."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from vitscope.contracts.kinds.base import MAX_LAYERS, MAX_SEED, ArraySpec, ImageParams, Kind, Summary

SignRule = Literal["cls-attention", "skew", "extreme", "norm"]


class EigenCamParams(ImageParams):
    """Eigen-CAM on every layer (or `layers`), with baselines and the randomized-weights check."""

    layers: tuple[Annotated[int, Field(ge=-MAX_LAYERS, lt=MAX_LAYERS)], ...] | None = Field(
        default=None,
        max_length=MAX_LAYERS,
        description="layers to map (negative counts from the last, -1 = the last); all when omitted",
    )
    baselines: bool = Field(default=True, description="also compute attention rollout and Grad-CAM")
    sanity_check: bool = Field(
        default=True,
        description="also map randomized-weights copies (Adebayo et al. 2018): an independent random copy "
        "for every image, and a cascade randomizing blocks from the top down for the first sanity_images",
    )
    sanity_images: int = Field(
        default=8,
        ge=1,
        le=256,
        description="images the summary's randomized-weights readings are measured on: the size of the "
        "fixed reference sample, or (sanity_reference 'job') the job's first images the cascade runs on",
    )
    sanity_reference: Literal["fixed", "job"] = Field(
        default="fixed",
        description="where the summary's randomized-weights readings (curves, pass/fail) are measured: "
        "'fixed' (default) on a fixed reference sample, the first sanity_images SynthScenes images of seed 0 "
        "at the model's input size, the same for every job of the model, so the reading is the model's "
        "and method's and does not move with the job's images; 'job' on the job's own images. Each image "
        "of the job gets its own independent-copy readings either way",
    )
    second_component: bool = Field(default=False, description="also return the second principal component")
    batch_size: int = Field(default=32, ge=1, le=1024)
    sign_rule: SignRule = Field(
        default="cls-attention",
        description=(
            "how the arbitrary sign of the principal component is fixed: 'cls-attention' (default) makes "
            "positive the side the CLS token attends to in the last block (the model's own read-out); "
            "'skew' makes the heavier tail positive (the smaller region), 'extreme' makes |max| >= |min| "
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
        default=None,
        ge=0,
        lt=MAX_LAYERS,
        description="block whose output Grad-CAM uses; default the layer before the last",
    )
    random_seed: int = Field(
        default=0, ge=0, le=MAX_SEED, description="seed of the random-weights copy for the sanity check"
    )
    faithfulness: bool = Field(
        default=True,
        description="also score every map (and a random map and a centre prior) by deletion and insertion "
        "(RISE: patches removed or restored in the map's order, over a blurred copy of the image), and "
        "by mass in box and the pointing game where the images have boxes",
    )
    faithfulness_steps: int = Field(
        default=8,
        ge=2,
        le=256,
        description="steps of the deletion and insertion curves (capped at the patches)",
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        default="float32",
        description="precision of the model's passes (maps, baselines, sanity check, faithfulness); the "
        "principal axes are solved in float32 whatever it is. On an H200, bfloat16 scores faithfulness "
        "about 8x faster (256 ViT-B images: 5.6 s against 45 s); the maps move by about its rounding",
    )


class SanityReading(BaseModel):
    """One method's randomized-weights check as a number (Adebayo et al. 2018)."""

    rank_corr: float | None = Field(description="mean |Spearman| of trained against fully randomized maps")
    randomization: Literal["cascade", "independent"]
    passed: bool | None = Field(description="rank_corr below the summary's sanity_threshold")


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
    left_out: dict[str, str] = Field(default_factory=dict, description="arrays not computed, with why")
    random_seed: int | None = None
    ssim_by_layer: list[float | None] | None = None
    cascade_rank_corr: list[float | None] | None = Field(
        default=None, description="last layer's map, |rank corr| after randomizing 0..L blocks from the top"
    )
    cascade_ssim: list[float | None] | None = None
    cascade_images: int | None = None
    sanity_reference: str | None = Field(
        default=None,
        description="the images the randomized-weights readings come from: a dataset spec (the fixed "
        "reference sample) or 'job'",
    )
    rank_corr_by_layer: list[float | None] | None = None
    rank_corr_rollout: float | None = None
    rank_corr_gradcam: float | None = None
    sanity_threshold: float | None = Field(
        default=None, description="a method passes the randomized-weights check below this |rank corr|"
    )
    sanity: dict[str, SanityReading] | None = Field(
        default=None, description="per method (eigencam/<layer>, rollout, gradcam): the check's reading"
    )
    faithfulness_methods: list[str] | None = Field(
        default=None,
        description="names of the methods axis: eigencam/<layer>..., rollout, gradcam, random, centre",
    )
    faithfulness_steps: int | None = None
    curve_fractions: list[float] | None = Field(
        default=None, description="share of the patches removed (deletion) or restored at each curve point"
    )
    faithfulness_score: str | None = Field(
        default=None, description="what the curves integrate: class probability, or a backbone's CLS cosine"
    )
    deletion_auc_by_method: list[float | None] | None = Field(
        default=None, description="mean, lower is better"
    )
    insertion_auc_by_method: list[float | None] | None = Field(
        default=None, description="mean, higher is better"
    )
    mass_in_box_by_method: list[float | None] | None = None
    pointing_by_method: list[float | None] | None = None
    box_share: float | None = Field(default=None, description="mean share of the image inside the box")
    most_faithful: dict[str, Any] | None = Field(
        default=None, description="{method, insertion_minus_deletion}: the largest insertion - deletion AUC"
    )


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
        "rank_corr": ArraySpec(
            ("N", "L"),
            "float",
            "|Spearman| of the projections, trained against randomized, per layer",
            optional=True,
        ),
        "ssim": ArraySpec(
            ("N", "L"), "float", "SSIM of the maps oriented alike, trained against randomized", optional=True
        ),
        "cascade_rank_corr": ArraySpec(
            ("n", "S", "L"),
            "float",
            "|rank corr| per cascade step (0..L blocks randomized from the top)",
            optional=True,
        ),
        "cascade_ssim": ArraySpec(("n", "S", "L"), "float", "SSIM per cascade step", optional=True),
        "rank_corr_rollout": ArraySpec(("N",), "float", optional=True),
        "rank_corr_gradcam": ArraySpec(("N",), "float", optional=True),
        "deletion_auc": ArraySpec(
            ("N", "methods"), "float", "area under the deletion curve (lower: more faithful)", optional=True
        ),
        "insertion_auc": ArraySpec(
            ("N", "methods"), "float", "area under the insertion curve (higher: more faithful)", optional=True
        ),
        "deletion_curve": ArraySpec(
            ("N", "methods", "points"), "float", "score as patches are removed, 0..1 of them", optional=True
        ),
        "insertion_curve": ArraySpec(
            ("N", "methods", "points"), "float", "score as patches are restored, 0..1 of them", optional=True
        ),
        "mass_in_box": ArraySpec(
            ("N", "methods"), "float", "share of the map's mass inside the box (NaN: no box)", optional=True
        ),
        "pointing_hit": ArraySpec(
            ("N", "methods"),
            "float",
            "1 if the map's peak patch is in the box, else 0 (NaN: no box)",
            optional=True,
        ),
        "box_share": ArraySpec(("N",), "float", "the box's share of the image (NaN: no box)", optional=True),
        "top5_idx": ArraySpec(
            ("N", "k"), "int", "top classes (k = 5, fewer classes: all); classifier only", optional=True
        ),
        "top5_prob": ArraySpec(("N", "k"), "float", "their probabilities; classifier only", optional=True),
        "crop_boxes": ArraySpec(
            ("N", 4), "float", "region (x0, y0, x1, y1) of the original picture analysed"
        ),
        "original_sizes": ArraySpec(("N", 2), "int", "(height, width) of the original picture"),
        "labels": ArraySpec(("N",), "int", "label per image, -1 unknown"),
    },
    run="vitscope.vit.analysis.eigencam:run",
    page="/cam",
    url_key="job",
    order=3,
    example_inputs={"dataset": "synthscenes:8:seed=0"},
)
