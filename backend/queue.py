"""The API's side of Celery: send a job id by task name, count live workers.

The API holds only a Celery *client* built by `worker.celery_app.create_app` (torch-free) and
sends tasks by name, so it never imports the code that runs them.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery

from worker.celery_app import TASK_NAME, create_app

log = logging.getLogger(__name__)


class JobQueue:
    """Sends jobs to the workers' queue and asks how many workers are alive (cached briefly)."""

    def __init__(self, redis_url: str, queue: str, ping_timeout_s: float, cache_s: float) -> None:
        self.queue = queue
        self.ping_timeout_s = ping_timeout_s
        self.cache_s = cache_s
        self.celery: Celery = create_app(redis_url, queue)
        self._lock = threading.Lock()
        self._workers: tuple[float, int] | None = None

    def send(self, job_id: str) -> None:
        """Enqueue `run_job(job_id)`; the message carries the id only."""
        self.celery.send_task(TASK_NAME, args=[job_id], queue=self.queue)

    def workers(self) -> int:
        """Return the number of workers answering a ping, reusing an answer younger than `cache_s`."""
        with self._lock:  # one ping at a time: concurrent health checks share its answer
            if self._workers is not None and time.monotonic() - self._workers[0] < self.cache_s:
                return self._workers[1]
            count = self._ping()
            self._workers = (time.monotonic(), count)
            return count

    def _ping(self) -> int:
        try:
            replies = self.celery.control.inspect(timeout=self.ping_timeout_s).ping()
        except Exception:  # a broker outage reads as "no workers"; /health reports Redis separately
            log.warning("worker ping failed", exc_info=True)
            return 0
        return len(replies or {})
