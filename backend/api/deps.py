"""What routes depend on, as `Annotated[..., Depends(...)]` aliases.

Routes take `SettingsDep`, `StoreDep`, `QueueDep`, `ResultCacheDep`, `ClientDep` (the caller,
authenticated when that is on) and `QuotaDep`; tests swap the settings
with `app.dependency_overrides[get_settings] = lambda: ApiSettings(...)` and the store, the queue
and the cache follow. Connections are built once per (URL, ...) and reused across requests.
The dependencies are `async` because they do no I/O: FastAPI would run plain functions in
its thread pool, one hop per dependency per request.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import Depends, Request

from backend import settings as settings_module
from backend.access import Client, identify
from backend.cache import ResultCache
from backend.queue import JobQueue
from backend.quota import Quota
from backend.settings import ApiSettings
from vitscope.contracts.store import Store


async def get_settings() -> ApiSettings:
    """Return the process's settings (the override point for tests)."""
    return settings_module.get_settings()


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


@cache
def _store(redis_url: str, tensor_ttl_s: int) -> Store:
    return Store.from_url(redis_url, tensor_ttl_s)


async def get_store(settings: SettingsDep) -> Store:
    """Return the Redis store named by the settings."""
    return _store(settings.redis_url, settings.tensor_ttl_s)


@cache
def _queue(
    redis_url: str, queue: str, ping_timeout_s: float, cache_s: float, visibility_timeout_s: int
) -> JobQueue:
    return JobQueue(redis_url, queue, ping_timeout_s, cache_s, visibility_timeout_s)


async def get_queue(settings: SettingsDep) -> JobQueue:
    """Return the job queue named by the settings."""
    return _queue(
        settings.redis_url,
        settings.queue,
        settings.worker_ping_timeout_s,
        settings.health_cache_s,
        settings.visibility_timeout_s,
    )


async def get_result_cache(request: Request, settings: SettingsDep) -> ResultCache:
    """Return this app's cache of rendered results (one per app, made on first use)."""
    state = request.app.state
    if getattr(state, "result_cache", None) is None:
        state.result_cache = ResultCache(settings.result_cache_bytes)
    cache_: ResultCache = state.result_cache
    return cache_


async def get_client(request: Request, settings: SettingsDep) -> Client:
    """Return the caller (401 when authentication is on and no valid bearer token came)."""
    return identify(request, settings)


@cache
def _quota(redis_url: str, tensor_ttl_s: int, store_bytes: int, client_bytes: int) -> Quota:
    return Quota(_store(redis_url, tensor_ttl_s).redis, store_bytes, client_bytes)


async def get_quota(settings: SettingsDep) -> Quota:
    """Return the quota on uploads and job records named by the settings."""
    return _quota(
        settings.redis_url, settings.tensor_ttl_s, settings.store_quota_bytes, settings.client_quota_bytes
    )


StoreDep = Annotated[Store, Depends(get_store)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
ResultCacheDep = Annotated[ResultCache, Depends(get_result_cache)]
ClientDep = Annotated[Client, Depends(get_client)]
QuotaDep = Annotated[Quota, Depends(get_quota)]
