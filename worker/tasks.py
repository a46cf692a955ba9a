"""The Celery task, thin like a view: read the job's stored spec, compute it, store the results.

Everything heavy (torch, the model, the analysis) is imported inside the task, so the
worker's parent process never touches CUDA; the pool child loads models on first use and
keeps them (`ModelCache`). `execute` is the task's body as a plain function, for tests.

Each computation runs under a `JobGuard` (`worker.guard`): time limits from the job's cost
estimate, a memory cap, a heartbeat, and a cancel check at every batch. A job whose worker died
during it is tried again with half the batch size, at most `max_attempts` times in all.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from celery import Task
from celery.signals import worker_process_init, worker_ready
from redis.exceptions import RedisError

from vitscope.contracts import kinds
from vitscope.contracts.errors import UserError
from vitscope.contracts.jobs import JobSpec, normalize_job
from vitscope.contracts.queue import TASK_NAME, queue_for, worker_queues
from vitscope.contracts.store import JobRecord, ResultRef, Store
from vitscope.vit.analysis import registry
from vitscope.vit.data.inputs import start_rendering
from vitscope.vit.heap import keep_freed_memory, release_freed_memory
from worker.celery_app import app
from worker.guard import JobGuard, JobStopped, Limits, estimate_seconds, time_limits
from worker.reaper import start_reaper
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
    if record.status in ("failed", "cancelled"):
        return record.status  # settled while its message waited: cancelled, or failed by its watchdog
    attempts = store.start(job_id, worker, settings.heartbeat_ttl_s)
    if attempts > settings.max_attempts:
        store.fail(
            job_id, f"internal error: the worker died {attempts - 1} times running this job (out of memory?)"
        )
        return "failed"
    try:
        results = _compute(record, store, models, settings, worker, attempts)
    except JobStopped as exc:
        return _stopped(job_id, store, exc, settings)
    except UserError as exc:
        store.fail(job_id, str(exc))
        return "failed"
    except Exception as exc:
        log.exception("job %s failed", job_id)
        store.fail(job_id, f"internal error: {type(exc).__name__}")
        return "failed"
    finally:
        release_freed_memory()  # the next job's memory cap reads the resident set, not this job's peak
    store.finish(job_id, results)
    return "done"


def _compute(
    record: JobRecord, store: Store, models: ModelCache, settings: WorkerSettings, worker: str, attempts: int
) -> dict[str, ResultRef]:
    # the stored spec is already normal; normalizing again is cheap and yields the typed params
    spec = smaller(normalize_job(record.spec), attempts)
    registry.get(spec.kind)  # an unknown or uninstalled kind fails before the model loads
    writer = ProgressWriter(store, record.id, settings.progress_interval_s)
    budget = limits(spec, store, settings)
    with JobGuard(store, record.id, worker, budget, writer, beat_ttl_s=settings.heartbeat_ttl_s) as guard:
        guard(0.0, f"loading {spec.model}")
        start_rendering(spec.inputs)  # SynthScenes' helpers (kept for later jobs) start while the model loads
        lm = models.get(spec.model, resolve_device(settings.device))
        result = registry.execute(lm, spec, _fetcher(store), guard)
        guard.check()  # cancelled during the last batch: store nothing
    return store.put_results(result.arrays, result.summary)


def limits(spec: JobSpec, store: Store, settings: WorkerSettings) -> Limits:
    """Return the job's time limits (from its cost estimate) and memory cap."""
    zip_images = None
    if spec.inputs.zip is not None:
        [meta] = store.blob_metas([spec.inputs.zip])
        zip_images = int(meta["images"]) if meta and "images" in meta else None
    soft, hard = time_limits(
        estimate_seconds(spec, settings.assumed_gflops, zip_images),
        settings.time_limit_factor,
        settings.min_time_limit_s,
        settings.max_time_limit_s,
    )
    return Limits(soft, hard, settings.memory_limit_bytes())


def smaller(spec: JobSpec, attempts: int) -> JobSpec:
    """Return the spec to run on attempt `attempts`: after a worker died during the job, with half
    the batch size per death (same results, a smaller peak), never blindly the same again."""
    batch_size = spec.params.get("batch_size")
    if attempts <= 1 or not isinstance(batch_size, int) or batch_size <= 1:
        return spec
    reduced = max(1, batch_size >> (attempts - 1))
    log.warning(
        "%s job, attempt %d after a worker died: batch size %d -> %d",
        spec.kind,
        attempts,
        batch_size,
        reduced,
    )
    return spec.model_copy(update={"params": {**spec.params, "batch_size": reduced}})


def _stopped(job_id: str, store: Store, stop: JobStopped, settings: WorkerSettings) -> str:
    """Settle a job its guard stopped, free what it held and return its status."""
    log.info("job %s stopped: %s", job_id, stop.message)
    if stop.settled:
        store.stopped(job_id)  # cancelled or taken back: the record already says so
    else:
        store.fail(job_id, stop.message)  # over its time or memory budget
    gc.collect()
    _release(resolve_device(settings.device))
    return stop.status


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
    """Import the model stack in each new pool process before its first job (never in the parent), and
    keep freed tensor memory for reuse there (`vitscope.vit.heap`)."""
    import vitscope.vit.models  # noqa: F401  (torch and transformers: seconds a job would otherwise wait)

    keep_freed_memory()


@app.task(name=TASK_NAME, bind=True)
def run_job(self: Task, job_id: str) -> str:
    """Compute the job `job_id`; return its final status (the record in Redis is the real outcome)."""
    worker = f"{self.request.hostname or socket.gethostname()}/{os.getpid()}"
    return execute(job_id, _store(), _models(), get_settings(), worker)


@worker_ready.connect
def _start_reaper(**_: object) -> None:
    """Start the lost-job reaper in the worker's parent process (`worker.reaper`)."""
    settings = get_settings()
    store = Store.from_url(settings.redis_url, settings.tensor_ttl_s)  # its own: never shared with a child

    def send(job_id: str) -> None:
        record = store.job(job_id)
        kind = kinds.all_kinds().get(record.spec.get("kind", "")) if record is not None else None
        queue = queue_for(settings.queue, bool(kind and kind.interactive))
        app.send_task(TASK_NAME, args=[job_id], queue=queue, ignore_result=True)

    queues = worker_queues(settings.queue).split(",")
    start_reaper(
        store, send, settings.reap_interval_s, queues, settings.heartbeat_ttl_s, settings.lost_message_s
    )
