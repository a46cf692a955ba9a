"""`python -m frontend`: serve the dashboard on VITSCOPE_FRONTEND_HOST:VITSCOPE_FRONTEND_PORT."""

from __future__ import annotations

import logging

from frontend.app import create_app
from frontend.settings import get_settings


def main() -> None:
    """Run the Dash app (threaded, so slow API calls of one view do not block another)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the useful logs
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    logging.getLogger(__name__).info(
        "vitscope dashboard on http://%s:%d (API %s)",
        settings.frontend_host,
        settings.frontend_port,
        settings.api_base,
    )
    create_app().run(host=settings.frontend_host, port=settings.frontend_port, debug=False, threaded=True)


if __name__ == "__main__":
    main()
