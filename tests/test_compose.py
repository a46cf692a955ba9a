"""docker-compose.yml and docker/Dockerfile, checked without Docker: services, commands, settings."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from backend.settings import ApiSettings
from frontend.settings import DashboardSettings
from vitscope.contracts.queue import worker_queues
from vitscope.contracts.settings import SharedSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SETTINGS: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "worker": WorkerSettings,
    "frontend": DashboardSettings,
}
NOT_OURS = {"HF_HOME", "VITSCOPE_CACHE_DIR"}
"""Variables read by libraries rather than by a Settings class (transformers; vitscope's model layer,
`vitscope.vit.models.cache`, which the CLI shares with the worker)."""


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Map each environment variable a Settings class reads (upper case) to its field."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    names = {}
    for field, info in cls.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias or prefix + field]
        names.update({str(choice).upper(): field for choice in choices if isinstance(choice, str)})
    return names


def command(service: str) -> list[str]:
    return [str(part) for part in SERVICES[service]["command"]]


def test_the_four_services_are_there_each_with_a_healthcheck():
    assert set(SERVICES) == {"redis", "api", "worker", "frontend"}
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"], name


def test_redis_persists_and_evicts_only_keys_with_a_ttl():
    redis = SERVICES["redis"]
    args = command("redis")
    assert redis["image"].startswith("redis:7")
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "volatile-lru"
    assert "--maxmemory" in args
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_api_and_frontend_run_the_web_image_and_the_worker_the_gpu_image():
    assert SERVICES["api"]["build"]["target"] == SERVICES["frontend"]["build"]["target"] == "web"
    assert SERVICES["worker"]["build"]["target"] == "worker"
    assert command("api") == ["python", "-m", "backend"]
    assert SERVICES["api"]["environment"]["VITSCOPE_API_PORT"] == SERVICES["api"]["ports"][0].split(":")[-1]
    assert command("frontend") == ["python", "-m", "frontend"]


def test_worker_is_one_process_per_gpu_on_the_configured_queue():
    args = command("worker")
    assert args[:4] == ["celery", "-A", "worker.celery_app", "worker"]
    assert args[args.index("--concurrency") + 1] == "1"
    assert args[args.index("-Q") + 1] == worker_queues(SERVICES["worker"]["environment"]["VITSCOPE_QUEUE"])
    [device] = SERVICES["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["count"] == 1 and "gpu" in device["capabilities"]


def test_build_targets_exist_in_the_dockerfile():
    stages = set(re.findall(r"^FROM \S+ AS (\w+)", (ROOT / "docker/Dockerfile").read_text(), re.MULTILINE))
    assert {SERVICES[name]["build"]["target"] for name in ("api", "worker", "frontend")} <= stages


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_variable_set_in_compose_is_a_setting_of_that_service(service):
    known = env_names(SETTINGS[service])
    unknown = set(SERVICES[service]["environment"]) - set(known) - NOT_OURS
    assert not unknown, f"{service}: {sorted(unknown)} are not fields of {SETTINGS[service].__name__}"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_required_setting_is_set_in_compose(service):
    cls = SETTINGS[service]
    required = {name for name, field in env_names(cls).items() if cls.model_fields[field].is_required()}
    assert required <= set(SERVICES[service]["environment"])


def test_api_and_worker_share_every_shared_setting():
    api, worker = SERVICES["api"]["environment"], SERVICES["worker"]["environment"]
    for name in env_names(SharedSettings):
        assert api.get(name) == worker.get(name), name
    assert "VITSCOPE_VISIBILITY_TIMEOUT_S" in api
    assert SERVICES["frontend"]["environment"]["VITSCOPE_API_URL"].endswith(":8000")


def test_web_image_requirements_leave_out_the_model_stack():
    out = subprocess.run(
        [sys.executable, str(ROOT / "docker/requirements.py"), str(ROOT / "pyproject.toml"), "web"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    names = {re.split(r"[\[<>=!~]", dep)[0] for dep in out}
    assert {"fastapi", "celery", "redis", "dash"} <= names
    assert not names & {"torch", "transformers", "safetensors"}


def test_access_control_is_on_by_default_for_the_api_and_the_dashboard():
    for service in ("api", "frontend"):
        env = SERVICES[service]["environment"]
        assert env["VITSCOPE_AUTH"] == "true", service
        assert env["VITSCOPE_AUTH_TOKENS"].startswith("${VITSCOPE_AUTH_TOKENS:?"), service  # required
    api = SERVICES["api"]["environment"]
    assert api["VITSCOPE_MODEL_ROOTS"] == '["/models"]'
    assert int(api["VITSCOPE_RATE_JOBS_PER_MINUTE"]) > 0 and int(api["VITSCOPE_RATE_UPLOADS_PER_MINUTE"]) > 0
    assert int(api["VITSCOPE_STORE_QUOTA_BYTES"]) > 0 and int(api["VITSCOPE_CLIENT_QUOTA_BYTES"]) > 0
