"""`vitscope up` end to end: everything starts, serves, runs the load benchmark, and stops on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from vitscope.stack import free_port, port_free

pytestmark = pytest.mark.integration


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} after {timeout} s")


def up_env(tmp_path):
    """The environment of a `vitscope up` on free ports with its data in `tmp_path/data`; and its ports."""
    ports = {
        "VITSCOPE_REDIS_PORT": free_port(),
        "VITSCOPE_API_PORT": free_port(),
        "VITSCOPE_FRONTEND_PORT": free_port(),
    }
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VITSCOPE_REDIS_URL")}
    env.update({k: str(v) for k, v in ports.items()})
    env.update(
        {
            "VITSCOPE_DATA_DIR": str(tmp_path / "data"),
            "VITSCOPE_QUEUE": f"up-{uuid.uuid4().hex[:6]}",
            "VITSCOPE_RESTART_BACKOFF_S": "0.5",
            "HF_HUB_OFFLINE": "1",
        }
    )
    return env, ports


def start_up(env, log):
    """Start `vitscope up` writing to `log`; return the process once it says it is up."""
    up = subprocess.Popen(
        [sys.executable, "-m", "vitscope", "up"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    wait_for(lambda: "vitscope is up" in log.read_text() or up.poll() is not None, 120, f"not up: {log}")
    assert up.poll() is None, log.read_text()[-3000:]
    return up


def healthy(api):
    """Whether the API answers that Redis and both workers (jobs, clicks) are alive."""
    try:
        return httpx.get(f"{api}/api/v1/health", timeout=5).json().get("workers") == 2
    except (httpx.HTTPError, ValueError):
        return False


def children(tmp_path):
    """The pids `vitscope up` recorded for its children, by name."""
    entries = json.loads((tmp_path / "data" / "stack.json").read_text())["children"]
    return {name: entry["pid"] for name, entry in entries.items()}


def alive(pid):
    """Whether `pid` runs (a zombie left to an init that does not reap counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_vitscope_up_restarts_each_child_that_dies_and_keeps_serving(tmp_path):
    env, ports = up_env(tmp_path)
    log = tmp_path / "up.log"
    api = f"http://127.0.0.1:{ports['VITSCOPE_API_PORT']}"
    up = start_up(env, log)
    try:
        wait_for(lambda: healthy(api), 90, "no worker")
        assert set(children(tmp_path)) >= {"redis", "worker", "clicks", "api", "web"}
        for name in ("redis", "worker", "api"):
            pid = children(tmp_path)[name]
            os.killpg(pid, signal.SIGKILL)
            wait_for(
                lambda n=name: f"[vitscope] {n} restarted" in log.read_text(), 30, f"{name} not restarted"
            )
            assert children(tmp_path)[name] != pid
            wait_for(lambda: healthy(api), 90, f"not healthy after {name} was killed")
        dashboard = f"http://127.0.0.1:{ports['VITSCOPE_FRONTEND_PORT']}/"
        assert httpx.get(dashboard, timeout=30).status_code == 200
    finally:
        up.send_signal(signal.SIGTERM)
        status = up.wait(60)
    assert status == 0
    assert all(port_free("127.0.0.1", port) for port in ports.values())


def test_a_second_vitscope_up_after_a_hard_kill_leaves_no_orphan_and_serves(tmp_path):
    env, ports = up_env(tmp_path)
    api = f"http://127.0.0.1:{ports['VITSCOPE_API_PORT']}"
    first = start_up(env, tmp_path / "first.log")
    old = children(tmp_path)
    first.kill()  # SIGKILL: no chance to stop its children
    first.wait()
    second = start_up(env, tmp_path / "second.log")
    try:
        assert not any(alive(pid) for pid in old.values())
        wait_for(lambda: healthy(api), 90, "the second stack has no worker")
    finally:
        second.send_signal(signal.SIGTERM)
        status = second.wait(60)
    assert status == 0
    assert all(port_free("127.0.0.1", port) for port in ports.values())
    assert not any(alive(pid) for pid in children_or_none(tmp_path))


def children_or_none(tmp_path):
    """The recorded pids, or none once the stack stopped cleanly (it removes its record)."""
    path = tmp_path / "data" / "stack.json"
    return list(children(tmp_path).values()) if path.exists() else []


def test_vitscope_up_serves_the_api_and_dashboard_and_stops_every_child_on_sigterm(tmp_path):
    env, ports = up_env(tmp_path)
    log = tmp_path / "up.log"
    up = subprocess.Popen(
        [sys.executable, "-m", "vitscope", "up"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    api = f"http://127.0.0.1:{ports['VITSCOPE_API_PORT']}"
    try:
        wait_for(lambda: "vitscope is up" in log.read_text(), 120, f"no 'vitscope is up' in {log}")
        text = log.read_text()
        assert f"{api}/docs" in text and "[redis] " in text and "[worker] " in text
        # the worker and the one kept for the head page's clicks
        wait_for(lambda: httpx.get(f"{api}/api/v1/health").json()["workers"] == 2, 60, "no workers")
        dashboard = f"http://127.0.0.1:{ports['VITSCOPE_FRONTEND_PORT']}/"
        assert httpx.get(dashboard, timeout=30).status_code == 200
        bench = subprocess.run(
            [
                sys.executable,
                "-m",
                "vitscope",
                "bench",
                "api-load",
                "--url",
                api,
                "--clients",
                "10",
                "--requests",
                "200",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        report = json.loads(bench.stdout)
        assert report["errors"] == 0 and report["requests"] == 200 and report["p95_ms"] > 0
    finally:
        up.send_signal(signal.SIGTERM)
        status = up.wait(60)
    assert status == 0
    assert all(port_free("127.0.0.1", port) for port in ports.values())
    assert any((tmp_path / "data").rglob("appendonly*"))
