"""`python -m frontend`: serve the dashboard on VITSCOPE_FRONTEND_HOST:VITSCOPE_FRONTEND_PORT.

Served by waitress, a production WSGI server (threads, no debugger, bounded request sizes), in
`vitscope up` and in docker compose alike; Werkzeug's development server is never used.
"""

from __future__ import annotations

import logging

import waitress

from frontend.app import create_app
from frontend.settings import get_settings


def main() -> None:
    """Serve the Dash app with waitress (threaded, so slow API calls of one view do not block another)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    logging.getLogger(__name__).info(
        "vitscope dashboard on http://%s:%d (API %s)",
        settings.frontend_host,
        settings.frontend_port,
        settings.api_base,
    )
    waitress.serve(
        create_app().server,
        host=settings.frontend_host,
        port=settings.frontend_port,
        threads=settings.frontend_threads,
        ident="vitscope",
    )


if __name__ == "__main__":
    main()
