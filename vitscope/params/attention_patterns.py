"""Parameters of the `attention-patterns` analysis."""

from pydantic import Field

from vitscope.params.base import Params


class AttentionPatternsParams(Params):
    """Autoencoder over per-query attention maps, 2D map, clusters, one head's details."""

    latent_dim: int = Field(16, ge=2, le=256)
    clusters: int = Field(8, ge=2, le=64)
    maps_per_head: int = Field(64, ge=4, le=4096, description="sampled maps per head and query type")
    epochs: int = Field(30, ge=1, le=1000)
    seed: int = 0
    batch_size: int = Field(32, ge=1, le=4096)
    detail_layer: int = Field(0, ge=0)
    detail_head: int = Field(0, ge=0)
    detail_image: int = Field(0, ge=0)
