"""`vitscope up`: the whole local stack in one command (Redis, worker, API, dashboard)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the `up` command."""
    p = sub.add_parser(
        "up",
        help="start Redis, a worker, the API and the dashboard; Ctrl-C stops them",
        description="Start the local stack. Configure it with environment variables: VITSCOPE_DATA_DIR, "
        "VITSCOPE_REDIS_PORT (or VITSCOPE_REDIS_URL / REDIS_URL for an external Redis), "
        "VITSCOPE_REDIS_MAXMEMORY, VITSCOPE_API_PORT, VITSCOPE_FRONTEND_PORT.",
    )
    p.set_defaults(handler=run)


def run(_args: argparse.Namespace) -> int:
    """Run the stack until Ctrl-C or SIGTERM; return non-zero if a service died."""
    from vitscope.stack import LocalStackSettings, Stack

    return Stack(LocalStackSettings()).run()
