"""The root of the one settings tree: every tier's settings extend `SharedSettings`.

    SharedSettings                      vitscope.contracts.settings (this module)
    ├── ApiSettings                     backend/settings.py
    ├── WorkerSettings                  worker/settings.py
    ├── DashboardSettings               frontend/settings.py
    └── LocalStackSettings              vitscope/stack.py (`vitscope up`)

Every field is read from the environment variable `VITSCOPE_` + its name in upper case
(`queue` from `VITSCOPE_QUEUE`); the one exception is the Redis URL, read from `REDIS_URL`
too. Unknown variables are ignored. The defaults serve the embedded local stack: Redis on
127.0.0.1:6390 and one queue.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6390/0"
DEFAULT_VISIBILITY_TIMEOUT_S = 6 * 3600
THIRTY_DAYS_S = 30 * 24 * 3600


class SharedSettings(BaseSettings):
    """What the tiers must agree on: the Redis they share, the queue between the API and the
    workers, how long a delivered job may stay unacknowledged, and the lifetime of a stored
    result (the dashboard talks to the API only and uses none of these)."""

    model_config = SettingsConfigDict(env_prefix="VITSCOPE_", extra="ignore")

    redis_url: str = Field(
        default=DEFAULT_REDIS_URL,
        validation_alias=AliasChoices("VITSCOPE_REDIS_URL", "REDIS_URL"),
        description="Redis holding the Celery broker, job records, uploads and result tensors",
    )
    queue: str = Field(
        default="vitscope", description="Celery queue the API sends jobs to and workers consume"
    )
    visibility_timeout_s: int = Field(
        default=DEFAULT_VISIBILITY_TIMEOUT_S,
        ge=1,
        description="an unacknowledged job of a worker that vanished is redelivered after this long; "
        "must exceed the longest job, or a running job is delivered twice. Any process listening on "
        "the broker (a worker, the API asking workers for a ping) may redeliver, so all must agree",
    )
    tensor_ttl_s: int = Field(
        default=THIRTY_DAYS_S, ge=60, description="lifetime of a stored result tensor, refreshed on read"
    )
    auth: bool = Field(
        default=False,
        description="require a token: the API a bearer header, the dashboard a login (off for the "
        "local stack on 127.0.0.1, on in docker compose)",
    )
    auth_tokens: str = Field(
        default="",
        repr=False,
        description="the accepted tokens as comma-separated name:token pairs (e.g. alice:3f9c...,bob:...); "
        "the name identifies the client for quotas and rate limits",
    )

    @model_validator(mode="after")
    def _tokens_when_auth(self) -> SharedSettings:
        if self.auth and not self.tokens():
            raise ValueError("VITSCOPE_AUTH is on but VITSCOPE_AUTH_TOKENS names no name:token pair")
        return self

    def tokens(self) -> dict[str, str]:
        """Return the accepted tokens, each mapped to its client name."""
        pairs = (item.strip().partition(":") for item in self.auth_tokens.split(",") if item.strip())
        return {token.strip(): name.strip() for name, _, token in pairs if token.strip()}
