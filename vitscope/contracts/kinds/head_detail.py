"""The `head-detail` kind: one image's attention in every head, what the head-detail page draws."""

from pydantic import Field

from vitscope.contracts.kinds.base import MAX_LAYERS, ArraySpec, ImageParams, Kind, Summary

MAX_IMAGE_INDEX = 1_000_000


class HeadDetailParams(ImageParams):
    """One image through the model with attention captured: each head's matrix, the histogram of its
    values and its strongest links, for every layer (or one), so that clicking through heads, layers
    and query patches of the image reads stored arrays and computes nothing."""

    image: int = Field(default=0, ge=0, le=MAX_IMAGE_INDEX, description="index of the image in the inputs")
    layer: int | None = Field(
        default=None,
        ge=0,
        le=MAX_LAYERS,
        description="keep only this layer (for models whose matrices of every layer are too large to "
        "store for one image); default: every layer",
    )
    bipartite_links: int = Field(
        default=100, ge=1, le=10_000, description="strongest links kept per head for the bipartite view"
    )
    hist_bins: int = Field(
        default=40, ge=5, le=200, description="bins of each head's attention-value histogram"
    )


class HeadDetailSummary(Summary):
    """Which image and layers the arrays hold, and what the model made of the image."""

    image: int = Field(description="index of the image in the inputs")
    images: int = Field(description="images in the inputs (the page's image menu)")
    layers: list[int] = Field(description="the model layers the arrays hold, in order (the first axis)")
    label: int = Field(description="the image's label, -1 unknown")
    prediction: int | None = Field(description="top-1 class of the model (None for a backbone)")
    top5: list[dict[str, object]] = Field(description="{index, label, prob} of the 5 likeliest classes")
    matrix_bytes: int = Field(description="bytes of the stored attention matrices")


KIND = Kind(
    name="head-detail",
    title="Head detail",
    help="one image through the model: every head's attention matrix, value histogram and strongest links "
    "(the head-detail page's attention views; light, submitted per image by the page)",
    params=HeadDetailParams,
    summary=HeadDetailSummary,
    results={
        "attention": ArraySpec(
            ("L", "H", "T", "T"),
            "float16",
            "each head's attention matrix, queries x keys, prefix tokens first (L: the layers kept)",
        ),
        "hist_counts": ArraySpec(("L", "H", "bins"), "int", "histogram of each head's attention values"),
        "hist_edges": ArraySpec(("L", "H", "edges"), "float", "bin edges, 0 to the head's largest value"),
        "links": ArraySpec(
            ("L", "H", "K", 4),
            "float",
            "each head's strongest entries, strongest first: query token, key token, weight, is-prefix link",
        ),
        "image": ArraySpec(("h", "w", 3), "uint8", "the image as the model saw it (resized and cropped)"),
    },
    run="vitscope.vit.analysis.head_detail:run",
    page="/head",
    url_key="hd",
    order=90,
    default_launch=False,
    interactive=True,
)
