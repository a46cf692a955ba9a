"""`GET /health`: is Redis reachable, and how many workers answer (503 when not both).

Open without a token, so load balancers and compose's health check can ask; it tells nothing
but the counts.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel

from backend.api.deps import QueueDep, StoreDep
from backend.api.errors import WHY, ErrorBody

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """`ok` when Redis answers and at least one worker does; `degraded` otherwise."""

    status: Literal["ok", "degraded"]
    redis: bool
    workers: int


DEGRADED = {
    503: {"model": Health, "description": "degraded: Redis is unreachable or no worker answers"},
    500: {"model": ErrorBody, "description": WHY[500]},
}


@router.get("/health", response_model=Health, responses=DEGRADED)  # type: ignore[arg-type]
def health(store: StoreDep, queue: QueueDep, response: Response) -> Health:
    """Return the state of the store and the number of live workers (cached a few seconds); 503 when degraded."""
    redis_ok = store.ping()
    workers = queue.workers() if redis_ok else 0
    ok = redis_ok and workers > 0
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "degraded", redis=redis_ok, workers=workers)
