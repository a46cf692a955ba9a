"""The local-stack supervisor: Redis config, process groups, prefixed output, dying children."""

import io
import signal
import socket
import time

import pytest

from vitscope.contracts.errors import UserError
from vitscope.stack import Child, LocalStackSettings, Stack, port_free, redis_config


def test_redis_config_persists_and_evicts_only_keys_with_a_ttl(tmp_path):
    config = redis_config(6390, tmp_path, "1gb").splitlines()
    assert "appendonly yes" in config and "maxmemory 1gb" in config
    assert "maxmemory-policy volatile-lru" in config
    assert f'dir "{tmp_path}"' in config and "bind 127.0.0.1" in config


def test_embedded_redis_runs_with_that_config(redis_server):
    client = redis_server.client()
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert int(client.config_get("maxmemory")["maxmemory"]) > 0


def test_child_output_is_prefixed_with_its_name():
    out = io.StringIO()
    child = Child("demo", ["sh", "-c", "echo one; echo two"], out=out).start()
    child.process.wait()
    time.sleep(0.2)  # let the pump thread drain the pipe
    assert out.getvalue() == "[demo] one\n[demo] two\n"


def test_stopping_a_child_stops_its_whole_process_group(tmp_path):
    pidfile = tmp_path / "grandchild"
    child = Child("tree", ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], out=io.StringIO()).start()
    while not pidfile.exists() or not pidfile.read_text().strip():
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    assert child.stop() == -signal.SIGTERM
    time.sleep(0.1)
    assert not alive(grandchild)


def alive(pid):
    """Whether `pid` runs (a zombie left to an init that does not reap counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_stack_stops_when_a_child_dies():
    stack = Stack(LocalStackSettings(), out=io.StringIO())
    stack.children = [Child("quitter", ["sh", "-c", "exit 3"], out=io.StringIO()).start()]
    assert stack._watch() == 1


def test_a_busy_port_is_a_user_error_naming_the_variable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        stack = Stack(LocalStackSettings(api_port=port, redis_url="redis://127.0.0.1:1/0"), out=io.StringIO())
        with pytest.raises(UserError, match="VITSCOPE_API_PORT"):
            stack.start()


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VITSCOPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VITSCOPE_FRONTEND_PORT", "9050")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    settings = LocalStackSettings()
    assert settings.data_dir == tmp_path and settings.frontend_port == 9050
    assert settings.effective_redis_url == "redis://elsewhere:6379/0" and not settings.embedded_redis
    env = Stack(settings).env()
    assert env["VITSCOPE_REDIS_URL"] == "redis://elsewhere:6379/0"
    assert env["VITSCOPE_DASHBOARD_URL"] == "http://127.0.0.1:9050"


def test_without_a_redis_url_the_stack_embeds_redis_on_its_port(monkeypatch):
    for name in ("REDIS_URL", "VITSCOPE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VITSCOPE_REDIS_PORT", "6391")
    settings = LocalStackSettings()
    assert settings.embedded_redis and settings.effective_redis_url == "redis://127.0.0.1:6391/0"
