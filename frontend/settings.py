"""Settings of the dashboard, read from the environment (prefix `VITSCOPE_`, safe defaults for the local stack).

A leaf of the one settings tree rooted at `vitscope.contracts.settings.SharedSettings`; each
field is read from `VITSCOPE_` + its name in upper case.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from vitscope.contracts.settings import SharedSettings


class DashboardSettings(SharedSettings):
    """Where the API lives, where the dashboard listens, and what it proposes by default."""

    api_url: str = Field(
        default="http://127.0.0.1:8000", description="the API base, with or without `/api/v1`"
    )
    frontend_host: str = Field(default="127.0.0.1", description="interface the dashboard binds")
    frontend_port: int = Field(default=8050, ge=1, le=65535, description="port the dashboard binds")
    frontend_model: str = Field(default="demo", description="the model the forms start with")
    frontend_poll_ms: int = Field(default=1000, ge=100, le=60_000, description="job polling period")
    frontend_click_poll_ms: int = Field(
        default=100,
        ge=20,
        le=60_000,
        description="polling period while only light per-click jobs (head detail, head pruning) are pending",
    )
    frontend_head_detail_mb: float = Field(
        default=64.0,
        gt=0,
        le=4096,
        description="largest attention of all layers of one image the head page asks for in one job (float16 "
        "MB); a larger model's head page asks for one layer at a time",
    )
    frontend_api_timeout_s: float = Field(default=30.0, gt=0, description="how long an API call may take")
    frontend_threads: int = Field(
        default=8, ge=1, le=256, description="requests the dashboard serves at once"
    )
    api_token: str = Field(
        default="",
        repr=False,
        description="the dashboard's own API token, for calls outside a visitor's request (with auth on, "
        "a visitor's calls carry the visitor's token)",
    )

    @property
    def api_base(self) -> str:
        """The API root including `/api/v1`, whatever form `api_url` was given in."""
        root = self.api_url.rstrip("/").removesuffix("/api/v1")
        return f"{root}/api/v1"

    @property
    def default_model(self) -> str:
        """The model the forms start with (`frontend_model`)."""
        return self.frontend_model

    @property
    def poll_ms(self) -> int:
        """The job polling period in milliseconds (`frontend_poll_ms`)."""
        return self.frontend_poll_ms

    @property
    def api_timeout_s(self) -> float:
        """How long an API call may take (`frontend_api_timeout_s`)."""
        return self.frontend_api_timeout_s


@lru_cache(maxsize=1)
def get_settings() -> DashboardSettings:
    """The process-wide settings (read once)."""
    return DashboardSettings()
