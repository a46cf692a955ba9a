"""Settings of the worker service, read from the environment (prefix `VITSCOPE_`).

The defaults run the embedded local stack (`vitscope up`): the model on the GPU when there is
one. A deployment overrides them in docker-compose.yml. The Redis URL, the queue, the visibility
timeout and the result lifetime come from `vitscope.contracts.settings.SharedSettings`, the root
of the settings tree.
"""

from __future__ import annotations

import os
from functools import cache

from pydantic import Field, model_validator

from vitscope.contracts.settings import SharedSettings
from vitscope.contracts.store import BEAT_TTL_S
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
    time_limit_factor: float = Field(
        default=10.0, gt=0, description="a job's soft time limit is this many times its estimated run time"
    )
    assumed_gflops: float = Field(
        default=50.0,
        gt=0,
        description="the sustained GFLOP/s that turns a job's cost estimate into its estimated run time "
        "(about 50 for a 2-core CPU; a GPU is far faster, so its limits are generous)",
    )
    min_time_limit_s: float = Field(default=600.0, gt=0, description="the least soft time limit of a job")
    max_time_limit_s: float = Field(
        default=4 * 3600.0,
        gt=0,
        description="the most soft time limit of a job; its hard limit (1.25 x + 60 s) must stay below "
        "the visibility timeout",
    )
    job_memory_mb: int | None = Field(
        default=None,
        ge=0,
        description="resident memory a job's process may use, checked at every batch (killed at 1.25 x); "
        "unset: 70% of this machine's memory, 0: no limit",
    )
    reap_interval_s: float = Field(
        default=5.0, gt=0, description="how often a worker re-queues running jobs whose heartbeat is gone"
    )
    lost_message_s: float = Field(
        default=60.0,
        gt=0,
        description="a job queued this long is looked for in the broker and sent again if absent",
    )
    heartbeat_ttl_s: int = Field(
        default=BEAT_TTL_S,
        ge=3,
        description="lifetime of a running job's heartbeat (refreshed every third of it); a job without "
        "one for this long is re-queued",
    )

    @model_validator(mode="after")
    def _hard_limit_below_visibility(self) -> WorkerSettings:
        from worker.guard import hard_limit

        if self.min_time_limit_s > self.max_time_limit_s:
            raise ValueError("min_time_limit_s exceeds max_time_limit_s")
        if hard_limit(self.max_time_limit_s) >= self.visibility_timeout_s:
            raise ValueError(
                f"the hard time limit of the longest job ({hard_limit(self.max_time_limit_s):.0f} s) must stay "
                f"below the visibility timeout ({self.visibility_timeout_s} s): lower VITSCOPE_MAX_TIME_LIMIT_S"
            )
        return self

    def memory_limit_bytes(self) -> int:
        """The per-job memory cap in bytes (0: none)."""
        if self.job_memory_mb is not None:
            return self.job_memory_mb * 2**20
        return int(0.7 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


@cache
def get_settings() -> WorkerSettings:
    """Return the settings of this process (read once)."""
    return WorkerSettings()
