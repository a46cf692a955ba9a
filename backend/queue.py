"""The API's side of Celery: send a job id by task name, count live workers.

The API holds its own small Celery *client* (`client`): the broker URL, the queue and the
visibility timeout from the shared settings, the task name from `vitscope.contracts.queue`.
It sends tasks by name, so it imports no worker code, and reads no results (the outcome of a
job is its Redis record), so it has no result backend.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery

from vitscope.contracts.queue import TASK_NAME, queue_for
from vitscope.contracts.settings import DEFAULT_VISIBILITY_TIMEOUT_S

log = logging.getLogger(__name__)


def client(redis_url: str, queue: str, visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S) -> Celery:
    """Return a Celery client that sends JSON messages to `queue` on the Redis at `redis_url`.

    `visibility_timeout_s` must be the workers' own: a process that consumes from the broker (the
    replies to a worker ping do) redelivers every job left unacknowledged longer than that.
    """
    app = Celery("vitscope-api", broker=redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=queue,
        broker_transport_options={"visibility_timeout": visibility_timeout_s},
        broker_connection_retry_on_startup=True,
    )
    return app


class JobQueue:
    """Sends jobs to the workers' queue and asks how many workers are alive (cached briefly)."""

    def __init__(
        self,
        redis_url: str,
        queue: str,
        ping_timeout_s: float,
        cache_s: float,
        visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S,
    ) -> None:
        self.queue = queue
        self.ping_timeout_s = ping_timeout_s
        self.cache_s = cache_s
        self.celery = client(redis_url, queue, visibility_timeout_s)
        self._lock = threading.Lock()
        self._workers: tuple[float, int] | None = None

    def send(self, job_id: str, interactive: bool = False) -> None:
        """Enqueue `run_job(job_id)`, on the interactive queue for an interactive kind's job; the message
        carries the id only."""
        target = queue_for(self.queue, interactive)
        self.celery.send_task(TASK_NAME, args=[job_id], queue=target, ignore_result=True)

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
