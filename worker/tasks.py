"""The Celery task, thin like a view: read the job's stored spec, compute it, store the results.

Everything heavy (torch, the model, the analysis) is imported inside the task, so the
worker's parent process never touches CUDA; the pool child loads models on first use and
keeps them (`ModelCache`). `execute` is the task's body as a plain function, for tests.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from celery import Task
from celery.signals import worker_process_init
from redis.exceptions import RedisError

from vitscope.contracts.errors import UserError
from vitscope.contracts.jobs import normalize_job
from vitscope.contracts.queue import TASK_NAME
from vitscope.contracts.store import JobRecord, ResultRef, Store
from vitscope.vit.analysis import registry
from worker.celery_app import app
from worker.settings import WorkerSettings, get_settings, resolve_device

if TYPE_CHECKING:
    from vitscope.vit.models import LoadedModel

log = logging.getLogger(__name__)


class ModelCache:
    """Models loaded in this process, keyed by (model spec, device); the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()

    def get(self, spec: str, device: str) -> LoadedModel:
        """Return the loaded model, loading it (and dropping the oldest beyond `size`) on a miss."""
        key = (spec, device)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        from vitscope.vit.models import load_model

        log.info("loading model %s on %s", spec, device)
        self._models[key] = load_model(spec, device)
        while len(self._models) > self.size:
            (old, old_device), _ = self._models.popitem(last=False)
            log.info("dropping model %s from %s", old, old_device)
            _release(old_device)
        return self._models[key]


class ProgressWriter:
    """The `Progress` callback of a job: writes progress to its record at most every `interval` seconds."""

    def __init__(self, store: Store, job_id: str, interval: float) -> None:
        self.store, self.job_id, self.interval = store, job_id, interval
        self._last = -float("inf")

    def __call__(self, fraction: float, message: str) -> None:
        """Record `fraction` (0..1) and `message` unless the last write was too recent."""
        now = time.monotonic()
        if now - self._last < self.interval and fraction < 1.0:
            return
        self._last = now
        try:
            self.store.set_progress(self.job_id, fraction, message)
        except RedisError:  # progress is advisory: a hiccup must not fail a long job
            log.warning("could not record progress of job %s", self.job_id, exc_info=True)


def execute(job_id: str, store: Store, models: ModelCache, settings: WorkerSettings, worker: str) -> str:
    """Compute job `job_id` unless its results are already stored; return its final status."""
    record = store.job(job_id)
    if record is None:
        log.error("job %s has no record: nothing to run", job_id)
        return "missing"
    if record.status == "done" and store.results_present(record.results):
        return "done"  # a duplicate delivery of a job already computed
    attempts = store.start(job_id, worker)
    if attempts > settings.max_attempts:
        store.fail(
            job_id, f"internal error: the worker died {attempts - 1} times running this job (out of memory?)"
        )
        return "failed"
    try:
        results = _compute(record, store, models, settings)
    except UserError as exc:
        store.fail(job_id, str(exc))
        return "failed"
    except Exception as exc:
        log.exception("job %s failed", job_id)
        store.fail(job_id, f"internal error: {type(exc).__name__}")
        return "failed"
    store.finish(job_id, results)
    return "done"


def _compute(
    record: JobRecord, store: Store, models: ModelCache, settings: WorkerSettings
) -> dict[str, ResultRef]:
    # the stored spec is already normal; normalizing again is cheap and yields the typed params
    spec = normalize_job(record.spec)
    registry.get(spec.kind)  # an unknown or uninstalled kind fails before the model loads
    progress = ProgressWriter(store, record.id, settings.progress_interval_s)
    progress(0.0, f"loading {spec.model}")
    lm = models.get(spec.model, resolve_device(settings.device))
    result = registry.execute(lm, spec, _fetcher(store), progress)
    return store.put_results(result.arrays, result.summary)


def _fetcher(store: Store) -> Callable[[str], bytes]:
    def fetch(blob_id: str) -> bytes:
        data = store.blob(blob_id)
        if data is None:
            raise UserError(f"uploaded file {blob_id} is gone: upload it again (POST /api/v1/images)")
        return data

    return fetch


def _release(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


@cache
def _store() -> Store:
    settings = get_settings()
    return Store.from_url(settings.redis_url, settings.tensor_ttl_s)


@cache
def _models() -> ModelCache:
    return ModelCache(get_settings().model_cache_size)


@worker_process_init.connect
def _warm_up(**_: object) -> None:
    """Import the model stack in each new pool process before its first job (never in the parent)."""
    import vitscope.vit.models  # noqa: F401  (torch and transformers: seconds a job would otherwise wait)


@app.task(name=TASK_NAME, bind=True)
def run_job(self: Task, job_id: str) -> str:
    """Compute the job `job_id`; return its final status (the record in Redis is the real outcome)."""
    worker = f"{self.request.hostname or socket.gethostname()}/{os.getpid()}"
    return execute(job_id, _store(), _models(), get_settings(), worker)
