"""`python -m backend`: serve the API on VITSCOPE_API_HOST:VITSCOPE_API_PORT (uvicorn)."""

from __future__ import annotations

import uvicorn

from backend.settings import get_settings


def main() -> None:
    """Run uvicorn with the host and port of the settings."""
    settings = get_settings()
    uvicorn.run("backend.api.main:app", host=settings.api_host, port=settings.api_port, access_log=False)


if __name__ == "__main__":
    main()
