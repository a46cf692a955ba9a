"""What the API and the workers must agree on, read from the environment (prefix `VITSCOPE_`).

`backend.settings.Settings` and `worker.settings.WorkerSettings` extend `StackSettings` with
their own fields. The defaults serve the embedded local stack (`vitscope up`): Redis on
127.0.0.1:6390 and one queue. `REDIS_URL` is accepted as well as `VITSCOPE_REDIS_URL`.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6390/0"
THIRTY_DAYS_S = 30 * 24 * 3600


class StackSettings(BaseSettings):
    """The Redis both services share, the queue between them and the lifetime of a stored result."""

    model_config = SettingsConfigDict(env_prefix="VITSCOPE_", extra="ignore")

    redis_url: str = Field(
        default=DEFAULT_REDIS_URL,
        validation_alias=AliasChoices("VITSCOPE_REDIS_URL", "REDIS_URL"),
        description="Redis holding the Celery broker and results, job records, uploads and result tensors",
    )
    queue: str = Field(
        default="vitscope", description="Celery queue the API sends jobs to and workers consume"
    )
    tensor_ttl_s: int = Field(
        default=THIRTY_DAYS_S, ge=60, description="lifetime of a stored result tensor, refreshed on read"
    )
