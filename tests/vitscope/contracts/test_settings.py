"""One settings tree: every tier's settings extend `SharedSettings` and read the same environment."""

import os

import pytest

from backend.settings import ApiSettings
from frontend.settings import DashboardSettings
from vitscope.contracts.settings import SharedSettings
from vitscope.stack import LocalStackSettings, Stack
from worker.settings import WorkerSettings

TIERS = (ApiSettings, WorkerSettings, DashboardSettings, LocalStackSettings)


def test_every_tier_extends_the_shared_settings_and_its_prefix() -> None:
    for cls in TIERS:
        assert issubclass(cls, SharedSettings)
        assert cls.model_config["env_prefix"] == "VITSCOPE_" and cls.model_config["extra"] == "ignore"


def test_api_and_worker_read_the_shared_fields_from_the_same_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/3")
    monkeypatch.setenv("VITSCOPE_QUEUE", "gpu-a")
    monkeypatch.setenv("VITSCOPE_TENSOR_TTL_S", "3600")
    api, worker = ApiSettings(), WorkerSettings()
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


def test_the_dashboard_reads_its_prefixed_variables_and_no_bare_host_or_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "1234")
    monkeypatch.setenv("VITSCOPE_API_URL", "http://api:8000/api/v1/")
    monkeypatch.setenv("VITSCOPE_FRONTEND_PORT", "9050")
    monkeypatch.setenv("VITSCOPE_FRONTEND_MODEL", "random:vit-micro")
    monkeypatch.setenv("VITSCOPE_FRONTEND_POLL_MS", "500")
    monkeypatch.setenv("VITSCOPE_FRONTEND_API_TIMEOUT_S", "5")
    settings = DashboardSettings()
    assert (settings.frontend_host, settings.frontend_port) == ("127.0.0.1", 9050)
    assert settings.api_base == "http://api:8000/api/v1"
    assert (settings.default_model, settings.poll_ms, settings.api_timeout_s) == (
        "random:vit-micro",
        500,
        5.0,
    )


def test_every_variable_the_local_stack_sets_is_read_by_a_service(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("VITSCOPE_")]:
        monkeypatch.delenv(name)
    ours = {name for name in Stack(LocalStackSettings()).env() if name.startswith("VITSCOPE_")}
    services = (ApiSettings, WorkerSettings, DashboardSettings)
    unread = {
        n for n in ours if not any(n.removeprefix("VITSCOPE_").lower() in c.model_fields for c in services)
    }
    assert ours and not unread
