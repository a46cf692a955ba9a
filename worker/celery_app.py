"""The worker's Celery app: a Redis broker, JSON messages that carry job ids only, no result backend.

Granularity: one task per job. `worker.tasks.run_job(job_id)` is a thin shell, like a view: it
reads the job's stored spec, calls the analysis and stores the results in the job's Redis
record. That record is the outcome the API serves, so Celery's result backend would hold a copy
nobody reads: results are ignored (`task_ignore_result`) and no backend is configured. The task
is idempotent: a duplicate delivery of a job whose results are stored returns at once, and one
whose results were evicted is computed again. The API sends the task by name
(`vitscope.contracts.queue.TASK_NAME`) from its own small client (`backend.queue`) and imports
no worker code.

Run one worker per GPU, each with one pool process that owns the GPU:

    CUDA_VISIBLE_DEVICES=0 celery -A worker.celery_app worker -Q vitscope --pool prefork --concurrency 1
    CUDA_VISIBLE_DEVICES=1 celery -A worker.celery_app worker -Q vitscope --pool prefork --concurrency 1 -n w1@%h

Concurrency is 1 per GPU because a job fills the GPU by itself (it batches internally) and
two processes on one GPU would each hold a copy of the model. Scaling out is more workers
on more GPU hosts, all consuming the same queue (docker-compose `worker` replicas).

The prefork pool with one child is deliberate, not `--pool solo`: the parent never touches
CUDA (this module and `worker.tasks` import no torch at module level), the child loads models
lazily and keeps them in an LRU, and if the child dies mid-job (out of memory, a driver crash)
the parent sees it and, with `task_acks_late` + `task_reject_on_worker_lost`, puts the job
back on the queue at once. If a whole worker or the broker vanishes, the job's heartbeat runs
out and a worker's reaper re-queues it within a minute (`worker.reaper`); the broker itself would
redeliver the unacknowledged message only after `visibility_timeout_s`, which must exceed every
job's hard time limit (`worker.guard`).
"""

from __future__ import annotations

from celery import Celery

from vitscope.contracts.queue import TASK_NAME
from vitscope.contracts.settings import DEFAULT_VISIBILITY_TIMEOUT_S
from worker.settings import WorkerSettings, get_settings


def create_app(
    redis_url: str,
    queue: str,
    visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S,
    restore_interval_s: int = 10,
) -> Celery:
    """Return a Celery app configured for vitscope on the Redis at `redis_url`, routing to `queue`."""
    app = Celery("vitscope", broker=redis_url, include=["worker.tasks"])
    transport = {
        "visibility_timeout": visibility_timeout_s,
        # restore abandoned jobs every `restore_interval_s` rather than every 10 x 10 s
        "unacked_restore_interval": restore_interval_s,
        "unacked_restore_throttle": 1,
    }
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        # the outcome is the job's record in Redis (worker.tasks.execute): no result backend
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        # a new pool process imports torch before it says it is up (worker.tasks._warm_up)
        worker_proc_alive_timeout=300,
        task_default_queue=queue,
        task_routes={TASK_NAME: {"queue": queue}},
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        # a job running while the broker connection drops is cancelled and redelivered, not acked
        worker_cancel_long_running_tasks_on_connection_loss=True,
    )
    return app


def app_from_settings(settings: WorkerSettings) -> Celery:
    """Return the worker's Celery app for `settings`."""
    return create_app(
        settings.redis_url, settings.queue, settings.visibility_timeout_s, settings.restore_interval_s
    )


app = app_from_settings(get_settings())
