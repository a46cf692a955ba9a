"""Settings of the API service, read from the environment (prefix `VITSCOPE_`).

The defaults serve the embedded local stack (`vitscope up`): Redis on 127.0.0.1:6390, the API
on 127.0.0.1:8000, the dashboard on 127.0.0.1:8050. `REDIS_URL` is accepted as well as
`VITSCOPE_REDIS_URL`.
"""

from __future__ import annotations

from functools import cache

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6390/0"
THIRTY_DAYS_S = 30 * 24 * 3600


class Settings(BaseSettings):
    """Everything the API needs to know about its environment."""

    model_config = SettingsConfigDict(env_prefix="VITSCOPE_", extra="ignore")

    redis_url: str = Field(
        default=DEFAULT_REDIS_URL,
        validation_alias=AliasChoices("VITSCOPE_REDIS_URL", "REDIS_URL"),
        description="Redis holding the job queue, job records, uploads and result tensors",
    )
    queue: str = Field(default="vitscope", description="Celery queue jobs are sent to")
    api_host: str = Field(default="127.0.0.1", description="interface uvicorn binds")
    api_port: int = Field(default=8000, description="port uvicorn binds")
    dashboard_url: str = Field(
        default="http://127.0.0.1:8050", description="base URL of the dashboard, for links in job records"
    )
    max_upload_bytes: int = Field(default=20_000_000, ge=1, description="largest image upload")
    max_archive_bytes: int = Field(default=200_000_000, ge=1, description="largest zip upload")
    max_pixels: int = Field(default=40_000_000, ge=1, description="largest image, width x height")
    tensor_ttl_s: int = Field(
        default=THIRTY_DAYS_S, ge=60, description="lifetime of a result, refreshed on read"
    )
    stale_after_s: int = Field(
        default=6 * 3600, ge=60, description="a queued/running job silent this long may be submitted again"
    )
    result_cache_bytes: int = Field(
        default=256_000_000, ge=0, description="rendered results kept in the API process (0: none)"
    )
    result_touch_s: float = Field(
        default=60.0, ge=0, description="a result served from that cache refreshes its Redis TTL this often"
    )
    health_cache_s: float = Field(default=5.0, ge=0, description="how long a worker count is reused")
    worker_ping_timeout_s: float = Field(default=0.5, gt=0, description="how long /health waits for workers")


@cache
def get_settings() -> Settings:
    """Return the settings of this process (read once)."""
    return Settings()
