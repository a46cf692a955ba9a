"""Parameters of the `attention-patterns` analysis."""

from typing import Any

from pydantic import Field

from vitscope.contracts.kinds.base import MAX_SEED, ArraySpec, ImageParams, Kind, Summary


class AttentionPatternsParams(ImageParams):
    """Autoencoder over per-query attention maps, 2D map, clusters (one head on one image is the light
    `head-detail` kind).

    Defaults are sized so ViT-Base (144 heads, 14x14 grid) on 1000 images runs in about a
    minute on one GPU: 64 maps x 144 heads x 2 query types is ~18k maps of 196 pixels.
    """

    maps_per_head: int = Field(64, ge=4, le=4096, description="sampled maps per head and query type")
    align_patch_queries: bool = Field(
        False,
        description="re-centre each patch-query map on its query: (2h-1, 2w-1) maps of relative offsets",
    )
    latent_dim: int = Field(16, ge=2, le=256, description="autoencoder latent size = PCA components compared")
    epochs: int = Field(30, ge=1, le=1000, description="autoencoder training epochs per query type")
    train_batch_size: int = Field(64, ge=8, le=4096, description="maps per autoencoder step")
    learning_rate: float = Field(3e-3, gt=0, le=1, description="Adam learning rate (cosine-decayed)")
    ae_width: int = Field(16, ge=4, le=128, description="channels of the autoencoder's conv layers")
    clusters: int = Field(8, ge=2, le=64, description="k of k-means on the latents")
    typical_per_cluster: int = Field(4, ge=1, le=32, description="real maps shown per cluster")
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="sampling, split, initialisation, shuffle and k-means seed"
    )
    batch_size: int = Field(32, ge=1, le=4096, description="images per forward pass")


class AttentionPatternsSummary(Summary):
    """Autoencoder against PCA per query type, and clusters."""

    ae_error: dict[str, float]
    pca_error: dict[str, float]
    ae_beats_pca: dict[str, bool]
    best_epoch: dict[str, int]
    clusters: dict[str, int]
    maps_per_head: dict[str, int]
    map_shape: dict[str, list[int]]
    aligned_patch_queries: bool
    split_sizes: dict[str, list[int]]
    map_scale: str
    embedding_method: str
    images: int
    layers: int
    heads: int


def _per_query(
    name: str, dims: tuple[str | int, ...], dtype: Any, description: str = ""
) -> dict[str, ArraySpec]:
    """The same array for patch and CLS queries (`name_patch`, `name_cls`), each with its own sizes."""
    return {
        f"{name}_{q}": ArraySpec(
            tuple(f"{d}_{q}" if isinstance(d, str) and d != "LH" else d for d in dims), dtype, description
        )
        for q in ("patch", "cls")
    }


KIND = Kind(
    name="attention-patterns",
    title="Attention patterns",
    help="an autoencoder over per-query attention maps: 2-D pattern map, clusters, prototypes",
    params=AttentionPatternsParams,
    summary=AttentionPatternsSummary,
    results={
        **_per_query("embedding", ("M", 2), "float", "2-D position of each sampled map"),
        **_per_query("sample_head", ("M",), "int", "layer * heads + head of each map"),
        **_per_query("sample_image", ("M",), "int"),
        **_per_query("sample_query", ("M",), "int"),
        **_per_query("prefix_share", ("M",), "float"),
        **_per_query("split", ("M",), "int8", "0 train, 1 validation, 2 test"),
        **_per_query("cluster", ("M",), "int"),
        **_per_query("head_points", ("LH", 2), "float", "2-D position of each head"),
        **_per_query("head_mix", ("LH", "k"), "float", "each head's share of each cluster"),
        **_per_query("prototypes", ("k", "h", "w"), "float", "decoded cluster centres"),
        **_per_query("typical", ("k", "t", "h", "w"), "float", "typical maps per cluster"),
        **_per_query("typical_index", ("k", "t"), "int", "sample index of each typical map, -1 none"),
        **_per_query("loss_curve", ("E", 2), "float", "train and validation loss per epoch"),
    },
    run="vitscope.vit.analysis.attention_patterns:run",
    page="/heads",
    url_key="pat",
    order=2,
)
