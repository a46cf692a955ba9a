"""Settings of the API service, read from the environment (prefix `VITSCOPE_`).

The defaults serve the embedded local stack (`vitscope up`): the API on 127.0.0.1:8000, the
dashboard on 127.0.0.1:8050. The Redis URL, the queue, the visibility timeout and the result
lifetime come from `vitscope.contracts.settings.SharedSettings`, the root of the settings tree.
"""

from __future__ import annotations

from functools import cache

from pydantic import Field

from vitscope.contracts.settings import SharedSettings


class ApiSettings(SharedSettings):
    """Everything the API needs to know about its environment."""

    api_host: str = Field(default="127.0.0.1", description="interface uvicorn binds")
    api_port: int = Field(default=8000, description="port uvicorn binds")
    dashboard_url: str = Field(
        default="http://127.0.0.1:8050", description="base URL of the dashboard, for links in job records"
    )
    max_upload_bytes: int = Field(default=20_000_000, ge=1, description="largest image upload")
    max_archive_bytes: int = Field(default=200_000_000, ge=1, description="largest zip upload")
    max_pixels: int = Field(default=40_000_000, ge=1, description="largest image, width x height")
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
def get_settings() -> ApiSettings:
    """Return the settings of this process (read once)."""
    return ApiSettings()
