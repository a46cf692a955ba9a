"""Settings of the API service, read from the environment (prefix `VITSCOPE_`).

The defaults serve the embedded local stack (`vitscope up`): the API on 127.0.0.1:8000, the
dashboard on 127.0.0.1:8050. The Redis URL, the queue, the visibility timeout and the result
lifetime come from `vitscope.contracts.settings.SharedSettings`, the root of the settings tree.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

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

    job_dtype: Literal["float32", "bfloat16"] | None = Field(
        default=None,
        description="precision of the model passes of a job whose request does not set `dtype` (the kinds "
        "with a `dtype` parameter: eigencam, head-importance, attention-profile); unset: each kind's "
        "default, float32. The spec, and so the job id, records the precision that ran. bfloat16 pays "
        "where the workers compute it natively (GPUs; CPUs with AVX512-BF16 or AMX): head importance "
        "keeps float32's accuracy drops (near ties are re-checked in float32), its other figures and "
        "the maps carry bfloat16 rounding (docs/BENCHMARKS.md)",
    )

    # bounded work: what one request may ask for, refused before anything is stored or queued
    max_job_bytes: int = Field(default=1_000_000, ge=1024, description="largest POST /jobs body")
    max_job_gflop: float = Field(
        default=200_000,
        gt=0,
        description="largest estimated job cost in GFLOP (vitscope.contracts.cost): about an hour of a "
        "2-core CPU; a GPU deployment raises it",
    )
    max_archive_unpacked_bytes: int = Field(
        default=1_000_000_000, ge=1, description="largest total decompressed size of a zip's members"
    )
    max_archive_ratio: float = Field(
        default=200.0, ge=1, description="largest decompressed/compressed size ratio of a zip member"
    )
    archive_check_s: float = Field(default=5.0, gt=0, description="most time spent checking one zip")
    decode_concurrency: int = Field(
        default=2,
        ge=1,
        description="uploaded images decoded at once (each may take width x height x 4 bytes)",
    )

    # the store protects itself: uploads and job records have a byte quota apart from the result cache
    store_quota_bytes: int = Field(
        default=600_000_000, ge=0, description="bytes of uploads and job records in Redis, all clients"
    )
    client_quota_bytes: int = Field(
        default=300_000_000, ge=0, description="bytes of uploads and job records one client may add"
    )

    # access control (the tokens and the switch are shared with the dashboard: SharedSettings)
    rate_jobs_per_minute: int = Field(
        default=0, ge=0, description="job submissions per client and minute (0: no limit)"
    )
    rate_uploads_per_minute: int = Field(
        default=0, ge=0, description="image and zip uploads per client and minute (0: no limit)"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins a browser may call the API from (JSON list); the dashboard calls it "
        "server-side and needs none",
    )
    model_roots: list[str] | None = Field(
        default=None,
        description="folders under which folder model specs are allowed (JSON list); unset: any folder "
        "(the local stack); [] : none",
    )
    job_id_secret: str = Field(
        default="",
        description="key of the job-id hash (HMAC); empty: a random key kept in Redis, made once",
        repr=False,
    )


@cache
def get_settings() -> ApiSettings:
    """Return the settings of this process (read once)."""
    return ApiSettings()
