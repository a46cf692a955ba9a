"""The local-stack supervisor: Redis config, process groups, prefixed output, dying children."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from vitscope.contracts.errors import UserError
from vitscope.stack import (
    Child,
    LocalStackSettings,
    Stack,
    lock_data_dir,
    port_free,
    record_children,
    redis_config,
    stop_stale_children,
)


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


def test_a_child_that_dies_is_restarted_with_back_off_and_one_that_keeps_dying_stops_the_stack(tmp_path):
    out = io.StringIO()
    settings = LocalStackSettings(data_dir=tmp_path, restart_backoff_s=0.2, restart_limit=2)
    stack = Stack(settings, out=out)
    stack.children = [Child("quitter", ["sh", "-c", "exit 3"], out=io.StringIO()).start()]
    started = time.monotonic()
    assert stack._watch() == 1
    text = out.getvalue()
    assert (
        "quitter exited with status 3: restarting it in 0.2 s" in text
        and text.count("quitter restarted") == 2
    )
    assert time.monotonic() - started >= 0.2 + 0.4  # waited 0.2 s, then 0.4 s


def test_a_restarted_child_runs_again_under_a_new_pid(tmp_path):
    stack = Stack(LocalStackSettings(data_dir=tmp_path, restart_backoff_s=0.1), out=io.StringIO())
    child = Child("sleeper", ["sleep", "30"], out=io.StringIO()).start()
    stack.children = [child]
    first = child.pid
    child.signal(signal.SIGKILL)
    child.process.wait()
    deadline = time.monotonic() + 5
    while (child.poll() is not None or child.pid == first) and time.monotonic() < deadline:
        assert stack._heal(child, time.monotonic())
        time.sleep(0.05)
    assert child.poll() is None and child.pid != first
    child.stop()


def test_a_second_up_stops_the_children_a_hard_killed_one_left_behind(tmp_path):
    stale = Child("redis", ["sleep", "60"], out=io.StringIO()).start()
    record_children(tmp_path, [stale])
    other = Child("unrelated", ["sleep", "60"], out=io.StringIO()).start()  # not recorded: left alone
    out = io.StringIO()
    assert stop_stale_children(tmp_path, out) == ["redis"]
    stale.process.wait(5)
    assert not alive(stale.pid) and alive(other.pid)
    assert f"stopping the redis (pid {stale.pid})" in out.getvalue()
    assert not (tmp_path / "stack.json").exists()
    other.stop()


def test_a_recorded_pid_now_running_something_else_is_left_alone(tmp_path):
    other = Child("unrelated", ["sleep", "60"], out=io.StringIO()).start()
    (tmp_path / "stack.json").write_text(
        json.dumps({"children": {"redis": {"pid": other.pid, "argv": ["redis-server", "x.conf"]}}})
    )
    assert stop_stale_children(tmp_path, io.StringIO()) == [] and alive(other.pid)
    other.stop()


def test_only_one_stack_runs_on_a_data_dir(tmp_path):
    held = lock_data_dir(tmp_path)
    with pytest.raises(UserError, match=f"another `vitscope up` \\(pid {os.getpid()}\\)"):
        lock_data_dir(tmp_path)
    held.close()
    lock_data_dir(tmp_path).close()


def test_a_child_dies_with_its_supervisor(tmp_path):
    pidfile = tmp_path / "child"
    code = (
        "import io, sys, time; from vitscope.stack import Child; "
        f"c = Child('s', ['sleep', '60'], out=io.StringIO(), die_with_parent=True).start(); "
        f"open({str(pidfile)!r}, 'w').write(str(c.pid)); time.sleep(60)"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    supervisor.kill()
    supervisor.wait()
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_a_busy_port_is_a_user_error_naming_the_variable(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        settings = LocalStackSettings(api_port=port, redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path)
        stack = Stack(settings, out=io.StringIO())
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


def test_workers_serve_the_interactive_queue_first_and_one_serves_only_it():
    from vitscope.stack import worker_command

    both, clicks = worker_command("vq"), worker_command("vq", "clicks@%h", interactive_only=True)
    assert both[both.index("-Q") + 1] == "vq.interactive,vq"
    assert clicks[clicks.index("-Q") + 1] == "vq.interactive" and "clicks@%h" in clicks


def test_a_worker_that_serves_no_clicks_consumes_only_the_dataset_queue():
    from vitscope.stack import worker_command

    dataset = worker_command("vq", serves_clicks=False)
    assert dataset[dataset.index("-Q") + 1] == "vq"


def test_a_child_runs_at_the_niceness_asked_for():
    out = io.StringIO()
    child = Child("nice", [sys.executable, "-c", "import os; print(os.nice(0))"], out=out, nice=7).start()
    child.process.wait()
    time.sleep(0.2)  # let the pump thread drain the pipe
    assert out.getvalue() == f"[nice] {os.nice(0) + 7}\n"


@pytest.mark.parametrize(("device", "serves_clicks", "nice"), [("cpu", False, 10), ("cuda", True, 0)])
def test_on_a_cpu_the_dataset_worker_leaves_the_clicks_to_the_clicks_worker(
    monkeypatch, tmp_path, redis_url, device, serves_clicks, nice
):
    settings = LocalStackSettings(data_dir=tmp_path, redis_url=redis_url, device=device)
    stack = Stack(settings, out=io.StringIO())
    spawned = {}
    monkeypatch.setattr(stack, "_check_ports", lambda: None)
    monkeypatch.setattr(stack, "_spawn", lambda child: spawned.setdefault(child.name, child))
    stack.start()
    worker, clicks = spawned["worker"], spawned["clicks"]
    queues = worker.argv[worker.argv.index("-Q") + 1]
    assert queues == ("vitscope.interactive,vitscope" if serves_clicks else "vitscope")
    assert worker.nice == nice and clicks.nice == 0 and "vitscope.interactive" in clicks.argv
    stack.stop()
