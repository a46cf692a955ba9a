"""The settings the API and the workers share come from one place and read the same environment."""

import pytest

from backend.settings import Settings
from worker.settings import WorkerSettings


def test_api_and_worker_read_the_shared_fields_from_the_same_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/3")
    monkeypatch.setenv("VITSCOPE_QUEUE", "gpu-a")
    monkeypatch.setenv("VITSCOPE_TENSOR_TTL_S", "3600")
    api, worker = Settings(), WorkerSettings()
    for settings in (api, worker):
        assert (settings.redis_url, settings.queue, settings.tensor_ttl_s) == (
            "redis://example:6379/3",
            "gpu-a",
            3600,
        )


def test_a_result_lifetime_under_a_minute_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITSCOPE_TENSOR_TTL_S", "5")
    with pytest.raises(ValueError, match="tensor_ttl_s"):
        WorkerSettings()
