"""The API in-process (TestClient) on a real Redis, its settings swapped through dependency_overrides."""

import uuid

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from backend.api.deps import get_settings
from backend.api.main import create_app
from backend.settings import ApiSettings
from tests.utils.auth import TOKENS


@pytest.fixture
def settings(redis_url):
    """Settings for one test: the session Redis (emptied), a queue of its own, small caps."""
    return ApiSettings(
        redis_url=redis_url,
        queue=f"test-{uuid.uuid4().hex[:8]}",
        dashboard_url="http://dash.test",
        max_upload_bytes=2_000_000,
        max_archive_bytes=4_000_000,
        max_pixels=4_000_000,
        worker_ping_timeout_s=0.2,
    )


@pytest.fixture
def client(settings):
    """A TestClient of a fresh app whose settings are `settings`."""
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def secured(settings):
    """A TestClient of a fresh app with authentication on: alice's and bob's tokens (`tests.utils.auth`)."""
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings.model_copy(
        update={"auth": True, "auth_tokens": TOKENS}
    )
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def redis(redis_url):
    """A raw client of the same Redis, to count keys and queued messages."""
    return Redis.from_url(redis_url)
