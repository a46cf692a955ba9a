"""Settings of the worker service, read from the environment (prefix `VITSCOPE_`).

The defaults run the embedded local stack (`vitscope up`): the model on the GPU when there is
one. A deployment overrides them in docker-compose.yml. The Redis URL, the queue, the visibility
timeout and the result lifetime come from `vitscope.contracts.settings.SharedSettings`, the root
of the settings tree.
"""

from __future__ import annotations

from functools import cache

from pydantic import Field

from vitscope.contracts.settings import SharedSettings
from vitscope.vit.device import resolve_device

__all__ = ["WorkerSettings", "get_settings", "resolve_device"]


class WorkerSettings(SharedSettings):
    """Everything a worker process needs to know about its environment."""

    device: str = Field(default="auto", description="'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N'")
    model_cache_size: int = Field(default=2, ge=1, description="models kept loaded per worker process (LRU)")
    max_attempts: int = Field(
        default=3, ge=1, description="a job whose worker dies this many times is marked failed"
    )
    restore_interval_s: int = Field(default=10, ge=1, description="how often a worker looks for such jobs")
    progress_interval_s: float = Field(default=0.5, ge=0, description="least seconds between progress writes")


@cache
def get_settings() -> WorkerSettings:
    """Return the settings of this process (read once)."""
    return WorkerSettings()
