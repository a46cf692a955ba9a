"""What keeps one running job bounded and visible: its time limits, its memory cap, its heartbeat
and its cancel check.

`JobGuard` is the job's `Progress` callback (the analyses call it after every batch, through
`vitscope.vit.analysis.base.stream`) and, while the job runs, a watchdog thread in the pool
process:

- at every batch the callback reads the job's status from Redis and raises `JobStopped` (a
  `Stopped`) when it is no longer `running` (cancelled, or taken back as lost), when the job is
  past its soft time limit, or when the process is over the job's memory cap; the task marks the
  job accordingly and frees what it held;
- every `tick_s` the thread checks the hard limits, which catch what a batch boundary cannot (one
  batch that allocates without bound, a call that never returns): it marks the job failed with
  the reason and kills its own process. Celery replaces the pool process and redelivers the
  message, and the redelivery finds the job failed and does not run it again;
- every third of `beat_ttl_s` it refreshes the job's heartbeat (`Store.beat`), whose short TTL lets
  a reaper re-queue the job within a minute if this worker or the broker vanishes (`worker.reaper`).

The time limits derive from the job's cost estimate, are clamped to `[min_time_limit_s,
max_time_limit_s]`, and the hard limit always stays below the broker's visibility timeout
(`WorkerSettings` checks it), so a running job is never delivered twice for running long.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from vitscope.contracts.cost import estimate_cost
from vitscope.contracts.jobs import JobSpec
from vitscope.contracts.store import BEAT_TTL_S, Store
from vitscope.vit.analysis.base import Progress, Stopped

log = logging.getLogger(__name__)

HARD_LIMIT_FACTOR = 1.25
"""The hard time limit is this much of the soft one, plus `HARD_LIMIT_GRACE_S`."""
HARD_LIMIT_GRACE_S = 60.0
HARD_MEMORY_FACTOR = 1.25
"""Between batches the memory cap is checked as given; the watchdog kills at this multiple of it."""


def estimate_seconds(spec: JobSpec, gflops: float, zip_images: int | None = None) -> float:
    """Return the job's estimated seconds at a sustained `gflops`: the API's own cost estimate
    (`vitscope.contracts.cost.estimate_cost`, images x model size x analysis) turned into time."""
    return estimate_cost(spec, zip_images).seconds(gflops)


@dataclass(frozen=True)
class Limits:
    """A job's budget: soft and hard seconds, and the memory cap in bytes (0: none)."""

    soft_s: float
    hard_s: float
    memory_bytes: int = 0

    @property
    def hard_memory_bytes(self) -> int:
        """The resident size at which the watchdog kills the job's process."""
        return int(self.memory_bytes * HARD_MEMORY_FACTOR)


def time_limits(estimate_s: float, factor: float, least_s: float, most_s: float) -> tuple[float, float]:
    """Return (soft, hard) seconds for a job estimated at `estimate_s`: `factor` x the estimate,
    clamped to [`least_s`, `most_s`], and the hard limit `HARD_LIMIT_FACTOR` x that plus a grace."""
    soft = min(max(factor * estimate_s, least_s), most_s)
    return soft, hard_limit(soft)


def hard_limit(soft_s: float) -> float:
    """Return the hard time limit that goes with a soft one."""
    return soft_s * HARD_LIMIT_FACTOR + HARD_LIMIT_GRACE_S


class JobStopped(Stopped):
    """The job stopped before its end. `status` is what it is now; `settled` is True when its record
    already says so (cancelled, or taken back), False when the guard stopped it (over a budget)."""

    def __init__(self, status: str, message: str, settled: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.settled = status, message, settled


class JobGuard:
    """The `Progress` callback of one job plus its watchdog thread (use it as a context manager)."""

    def __init__(
        self,
        store: Store,
        job_id: str,
        worker: str,
        limits: Limits,
        progress: Progress,
        tick_s: float = 1.0,
        beat_ttl_s: int = BEAT_TTL_S,
    ) -> None:
        self.store, self.job_id, self.worker, self.limits = store, job_id, worker, limits
        self.progress, self.tick_s, self.beat_ttl_s = progress, tick_s, beat_ttl_s
        self.started = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"guard-{job_id}", daemon=True)

    def __enter__(self) -> JobGuard:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def __call__(self, fraction: float, message: str) -> None:
        """Check the job may go on (raise `JobStopped` if not), then report its progress."""
        self.check()
        self.progress(fraction, message)

    def check(self) -> None:
        """Raise `JobStopped` if the job was cancelled or taken back, or is over its time or memory budget."""
        try:
            status = self.store.status(self.job_id)
        except RedisError:  # the broker is down too: the worker cancels the job itself
            status = "running"
        if status != "running":
            raise JobStopped(status or "cancelled", f"the job is {status or 'deleted'}", settled=True)
        elapsed = time.monotonic() - self.started
        if elapsed > self.limits.soft_s:
            raise JobStopped("failed", self._over_time(elapsed, self.limits.soft_s))
        rss = resident_bytes()
        if self.limits.memory_bytes and rss > self.limits.memory_bytes:
            raise JobStopped("failed", self._over_memory(rss, self.limits.memory_bytes))

    def _watch(self) -> None:
        last_beat = time.monotonic()
        while not self._done.wait(self.tick_s):
            now = time.monotonic()
            rss = resident_bytes()
            if now - self.started > self.limits.hard_s:
                self._kill(self._over_time(now - self.started, self.limits.hard_s))
            elif self.limits.memory_bytes and rss > self.limits.hard_memory_bytes:
                self._kill(self._over_memory(rss, self.limits.hard_memory_bytes))
            if now - last_beat >= self.beat_ttl_s / 3:
                last_beat = now
                try:
                    self.store.beat(self.job_id, self.worker, self.beat_ttl_s)
                except RedisError:
                    log.warning("could not refresh the heartbeat of job %s", self.job_id)

    def _kill(self, reason: str) -> None:
        # the job is marked failed first, so the redelivery that follows this process' death skips it
        log.error("job %s: %s; killing the pool process %d", self.job_id, reason, os.getpid())
        try:
            self.store.fail(self.job_id, reason)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)

    def _over_time(self, elapsed: float, limit: float) -> str:
        return (
            f"the job ran {elapsed:.0f} s, over its time limit of {limit:.0f} s (derived from its cost "
            "estimate): use fewer images or a smaller model, or raise VITSCOPE_TIME_LIMIT_FACTOR"
        )

    def _over_memory(self, rss: int, limit: int) -> str:
        return (
            f"the job used {rss / 2**30:.1f} GiB, over the per-job memory limit of {limit / 2**30:.1f} GiB: "
            "use a smaller batch_size, fewer layers or a smaller model, or raise VITSCOPE_JOB_MEMORY_MB"
        )


def resident_bytes() -> int:
    """Return this process' resident set size in bytes (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
