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


def test_vitscope_up_serves_the_api_and_dashboard_and_stops_every_child_on_sigterm(tmp_path):
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
            "HF_HUB_OFFLINE": "1",
        }
    )
    log = tmp_path / "up.log"
    up = subprocess.Popen(
        [sys.executable, "-m", "vitscope", "up"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    api = f"http://127.0.0.1:{ports['VITSCOPE_API_PORT']}"
    try:
        wait_for(lambda: "vitscope is up" in log.read_text(), 120, f"no 'vitscope is up' in {log}")
        text = log.read_text()
        assert f"{api}/docs" in text and "[redis] " in text and "[worker] " in text
        wait_for(lambda: httpx.get(f"{api}/api/v1/health").json()["workers"] == 1, 60, "no worker")
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
