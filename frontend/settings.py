"""Settings of the dashboard, read from the environment (safe defaults for the local stack)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the API lives, where the dashboard listens, and what it proposes by default.

    Environment: `VITSCOPE_API_URL` (the API base, with or without `/api/v1`),
    `VITSCOPE_FRONTEND_HOST`, `VITSCOPE_FRONTEND_PORT`, `VITSCOPE_FRONTEND_MODEL`
    (the model the forms start with), `VITSCOPE_FRONTEND_POLL_MS` (job polling period).
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    api_url: str = Field(
        default="http://127.0.0.1:8000", validation_alias=AliasChoices("VITSCOPE_API_URL", "api_url")
    )
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("VITSCOPE_FRONTEND_HOST", "host"))
    port: int = Field(
        default=8050, ge=1, le=65535, validation_alias=AliasChoices("VITSCOPE_FRONTEND_PORT", "port")
    )
    default_model: str = Field(
        default="demo", validation_alias=AliasChoices("VITSCOPE_FRONTEND_MODEL", "default_model")
    )
    poll_ms: int = Field(
        default=1000, ge=100, le=60_000, validation_alias=AliasChoices("VITSCOPE_FRONTEND_POLL_MS", "poll_ms")
    )
    api_timeout_s: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("VITSCOPE_FRONTEND_API_TIMEOUT_S", "api_timeout_s")
    )

    @property
    def api_base(self) -> str:
        """The API root including `/api/v1`, whatever form `api_url` was given in."""
        root = self.api_url.rstrip("/").removesuffix("/api/v1")
        return f"{root}/api/v1"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
