"""A real stack for the integration tests: redis-server, a Celery worker subprocess, the API in-process.

One stack serves the whole integration session (starting a worker costs seconds on a small
CPU); tests that restart a piece leave it running again. Each test uses job specs of its own
(different dataset seeds), so tests do not see each other's cache hits.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.api.deps import get_settings
from backend.api.main import create_app
from backend.settings import ApiSettings
from vitscope.contracts.store import QUEUED, RUNNING, Store, blob_key, job_key
from vitscope.stack import Child, worker_command

VISIBILITY_TIMEOUT_S = 300
"""An unacknowledged job of a vanished worker is redelivered after this long (production: hours);
it must exceed every job's hard time limit, so the worker's longest one is set below it."""
HEARTBEAT_TTL_S = 4
"""A running job whose heartbeat is this old is re-queued by a worker's reaper (production: 30 s)."""
LOST_MESSAGE_S = 3
"""A job queued this long without a message in the broker is sent again (production: 60 s)."""


@dataclass
class Worker:
    """A Celery worker subprocess (prefork, one pool process) consuming the test queue."""

    env: dict[str, str]
    queue: str
    log: Path
    child: Child | None = None
    starts: int = field(default=0)

    def start(self, timeout: float = 60.0) -> Worker:
        """Start a worker and wait until it says it is ready."""
        self.starts += 1
        hostname = f"it{self.starts}-{uuid.uuid4().hex[:6]}@%h"
        argv = worker_command(self.queue, hostname, ["--without-heartbeat"])
        self.child = Child("worker", argv, self.env, self.log.open("a"), grace=5.0).start()
        deadline = time.monotonic() + timeout
        marker = hostname.split("@")[0]
        while time.monotonic() < deadline:
            if self.child.poll() is not None:
                raise RuntimeError(f"the worker exited: see {self.log}")
            text = self.log.read_text(errors="replace")
            if any(marker in line and "ready." in line for line in text.splitlines()):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"the worker was not ready after {timeout} s: see {self.log}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool process at once (a host that vanished)."""
        assert self.child is not None
        self.child.signal(signal.SIGKILL)
        self.child.process.wait()  # type: ignore[union-attr]

    def stop(self) -> None:
        """Stop the worker (warm shutdown, then harder)."""
        if self.child is not None:
            self.child.stop()


@dataclass
class Stack:
    """What a test talks to: the API client, the store, a raw Redis client, the Redis server, the worker."""

    client: TestClient
    store: Store
    redis: Any
    server: Any
    worker: Worker
    settings: ApiSettings

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until no job is queued or running, so that only the next request changes what is stored."""
        deadline = time.monotonic() + timeout
        while self.redis.zcard(QUEUED) or self.redis.scard(RUNNING) or self.redis.llen(self.settings.queue):
            assert time.monotonic() < deadline, "the stack is still busy with earlier tests' jobs"
            time.sleep(0.1)

    def stored(self) -> tuple[frozenset[str], int]:
        """What a request could add: the job records and uploads, and the queued jobs and messages.
        (The worker writes tensors and heartbeats of earlier tests' jobs at any time, so the count of
        all keys is no measure of one request; call `settle` first.)"""
        keys = [*self.redis.scan_iter(job_key("*")), *self.redis.scan_iter(blob_key("*"))]
        queued = self.redis.zcard(QUEUED) + self.redis.llen(self.settings.queue)
        return frozenset(k.decode() if isinstance(k, bytes) else k for k in keys), int(queued)

    def upload(self, data: bytes, name: str = "image.png") -> str:
        """Upload an image; return its id."""
        response = self.client.post(
            "/api/v1/images", files={"file": (name, data, "application/octet-stream")}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def submit(self, job: dict[str, Any]) -> dict[str, Any]:
        """POST a job; return the record."""
        response = self.client.post("/api/v1/jobs", json=job)
        assert response.status_code == 202, response.text
        return dict(response.json())

    def wait(self, job_id: str, until: Any = None, timeout: float = 90.0) -> dict[str, Any]:
        """Poll the job until `until(record)` holds (default: done or failed); return the record."""
        until = until or (lambda r: r["status"] in ("done", "failed"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.client.get(f"/api/v1/jobs/{job_id}").json()
            if until(record):
                return dict(record)
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} still {record['status']} after {timeout} s: {record}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, start_redis: Any) -> Any:
    """The running stack (see the module docstring)."""
    tmp = tmp_path_factory.mktemp("stack")
    redis = start_redis(tmp / "redis")
    queue = f"it-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "VITSCOPE_REDIS_URL": redis.url,
        "VITSCOPE_QUEUE": queue,
        "VITSCOPE_DEVICE": "cpu",
        "VITSCOPE_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
        "VITSCOPE_MIN_TIME_LIMIT_S": "60",
        "VITSCOPE_MAX_TIME_LIMIT_S": "180",
        "VITSCOPE_RESTORE_INTERVAL_S": "1",
        "VITSCOPE_PROGRESS_INTERVAL_S": "0.1",
        "VITSCOPE_HEARTBEAT_TTL_S": str(HEARTBEAT_TTL_S),
        "VITSCOPE_REAP_INTERVAL_S": "1",
        "VITSCOPE_LOST_MESSAGE_S": str(LOST_MESSAGE_S),
        "HF_HUB_OFFLINE": "1",
        "VITSCOPE_RENDER_HELPERS": "2",  # a SynthScenes set of 128 or more goes through the helpers
    }
    worker = Worker(env, queue, tmp / "worker.log").start()
    settings = ApiSettings(
        redis_url=redis.url,
        queue=queue,
        dashboard_url="http://dash.test",
        health_cache_s=0,
        worker_ping_timeout_s=1.0,
    )
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    with TestClient(app) as client:
        store = Store.from_url(redis.url, settings.tensor_ttl_s)
        yield Stack(client, store, redis.client(), redis, worker, settings)
    worker.stop()
    redis.stop()
