"""Fixtures of the dashboard's fast tests: the fake API on a free port, the Dash app, a client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn
from dash import Dash
from fastapi import FastAPI

from frontend.api import ApiClient
from tests.frontend.fake_api import FakeModel, make_app
from vitscope.contracts import kinds


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def fake_app() -> FastAPI:
    """The fake API app the session serves (its `state.fake` jobs, its `state.slices` reads)."""
    return make_app(FakeModel())


@pytest.fixture(scope="session")
def fake_api_url(fake_app: FastAPI) -> Iterator[str]:
    """The fake API served by uvicorn in a thread; yields its base URL (with /api/v1)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake_app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake API did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/api/v1"
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def api(fake_api_url: str) -> ApiClient:
    """A fresh client (empty cache) of the fake API."""
    return ApiClient(fake_api_url)


@pytest.fixture(scope="session")
def dash_app(fake_api_url: str) -> Iterator[Dash]:
    """The dashboard app, pointed at the fake API (pages import once per process)."""
    from frontend.api import get_client
    from frontend.app import create_app
    from frontend.settings import get_settings

    patch = pytest.MonkeyPatch()
    patch.setenv("VITSCOPE_API_URL", fake_api_url)
    get_settings.cache_clear()
    get_client.cache_clear()
    yield create_app()
    patch.undo()
    get_settings.cache_clear()
    get_client.cache_clear()


@pytest.fixture
def extra_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[kinds.Kind]:
    """The kind of `tests/frontend/extra_kind.py`, declared through `VITSCOPE_EXTRA_KINDS` for one test."""
    monkeypatch.setenv(kinds.EXTRA_KINDS_ENV, "tests.frontend.extra_kind")
    kinds.all_kinds.cache_clear()
    yield kinds.get("token-norms")
    kinds.all_kinds.cache_clear()  # read again, without it, once the variable is restored


@pytest.fixture
def hold(fake_app: FastAPI) -> Iterator[Callable[[str], None]]:
    """`hold(job_id)`: the fake API reports that job running until the test ends."""
    held: set[str] = fake_app.state.fake.held
    added: list[str] = []

    def hold(job_id: str) -> None:
        held.add(job_id)
        added.append(job_id)

    yield hold
    held.difference_update(added)
