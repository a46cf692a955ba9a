"""Parameters of the `attention-patterns` analysis."""

from pydantic import Field

from vitscope.contracts.params.base import Params


class AttentionPatternsParams(Params):
    """Autoencoder over per-query attention maps, 2D map, clusters, one head's details.

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
    seed: int = Field(0, ge=0, description="sampling, split, initialisation, shuffle and k-means seed")
    batch_size: int = Field(32, ge=1, le=4096, description="images per forward pass")
    detail_layer: int = Field(0, ge=0, description="layer of the head shown in detail")
    detail_head: int = Field(0, ge=0, description="head shown in detail")
    detail_image: int = Field(0, ge=0, description="dataset index of the image shown in detail")
    bipartite_links: int = Field(
        100, ge=1, le=10_000, description="strongest links kept for the bipartite view"
    )
    hist_bins: int = Field(40, ge=5, le=200, description="bins of the attention-value histogram")
