"""`GET /health`: is Redis reachable, and how many workers answer."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from backend.api.deps import QueueDep, StoreDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """`ok` when Redis answers and at least one worker does; `degraded` otherwise."""

    status: Literal["ok", "degraded"]
    redis: bool
    workers: int


@router.get("/health", response_model=Health)
def health(store: StoreDep, queue: QueueDep) -> Health:
    """Return the state of the store and the number of live workers (cached a few seconds)."""
    redis_ok = store.ping()
    workers = queue.workers() if redis_ok else 0
    return Health(status="ok" if redis_ok and workers > 0 else "degraded", redis=redis_ok, workers=workers)
