"""Settings of the worker service, read from the environment (prefix `VITSCOPE_`).

The defaults run the embedded local stack (`vitscope up`): Redis on 127.0.0.1:6390, one
queue, the model on the GPU when there is one. A deployment overrides them in
docker-compose.yml; `REDIS_URL` is accepted as well as `VITSCOPE_REDIS_URL`. The fields both
services share come from `vitscope.contracts.settings.StackSettings`.
"""

from __future__ import annotations

from functools import cache

from pydantic import Field

from vitscope.contracts.settings import StackSettings


class WorkerSettings(StackSettings):
    """Everything a worker process needs to know about its environment."""

    device: str = Field(default="auto", description="'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N'")
    model_cache_size: int = Field(default=2, ge=1, description="models kept loaded per worker process (LRU)")
    max_attempts: int = Field(
        default=3, ge=1, description="a job whose worker dies this many times is marked failed"
    )
    visibility_timeout_s: int = Field(
        default=6 * 3600,
        ge=1,
        description="an unacknowledged job of a worker that vanished is redelivered after this long; "
        "must exceed the longest job, or a running job is delivered twice",
    )
    restore_interval_s: int = Field(default=10, ge=1, description="how often a worker looks for such jobs")
    progress_interval_s: float = Field(default=0.5, ge=0, description="least seconds between progress writes")


@cache
def get_settings() -> WorkerSettings:
    """Return the settings of this process (read once)."""
    return WorkerSettings()


def resolve_device(setting: str) -> str:
    """Return the torch device for a `device` setting: 'auto' means cuda when available, else cpu."""
    if setting != "auto":
        return setting
    import torch  # only here, in the process that will run the model: a worker's parent never calls this

    return "cuda" if torch.cuda.is_available() else "cpu"
