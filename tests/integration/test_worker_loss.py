"""A worker or a Redis that dies mid-job loses nothing: acks_late + reject_on_worker_lost for a pool
process, the heartbeat reaper for a whole worker or the broker (within a minute, not hours)."""

import os
import signal
import time

import pytest

from tests.integration.conftest import HEARTBEAT_TTL_S, LOST_MESSAGE_S
from vitscope.contracts.jobs import normalize_job

pytestmark = pytest.mark.integration


def slow_job(seed):
    """An eigencam job of many small batches: long enough to be caught running, cheap to run again."""
    inputs = {"dataset": f"synthscenes:48:seed={seed}"}
    params = {"batch_size": 2, "baselines": False, "sanity_check": False}
    return {"kind": "eigencam", "model": "random:vit-micro", "inputs": inputs, "params": params}


def catch_running(stack, job_id, timeout=120.0):
    """Poll the record in Redis (every 10 ms: a fast machine runs the job in well under a second)
    until a worker has started the job; return the record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = stack.store.job(job_id)
        if record.status == "running":
            return record
        assert record.status == "queued", record
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} never started")


def test_a_pool_process_killed_mid_job_is_replaced_and_the_job_completes(stack):
    job = stack.submit(slow_job(seed=21))
    pid = int(catch_running(stack, job["id"]).worker.rsplit("/", 1)[1])
    assert pid != stack.worker.child.pid  # the pool process, not the worker's parent
    os.kill(pid, signal.SIGKILL)
    done = stack.wait(job["id"], timeout=180)
    assert done["status"] == "done", done["error"]
    assert done["attempts"] == 2 and done["runs"] == 1
    assert stack.worker.child.poll() is None  # the worker itself lived on


def test_a_worker_killed_mid_job_leaves_the_job_to_the_next_worker(stack):
    job = stack.submit(slow_job(seed=22))
    catch_running(stack, job["id"])
    stack.worker.kill()
    assert stack.store.job(job["id"]).status == "running"  # nobody is computing it now
    stack.worker.start()
    done = stack.wait(job["id"], timeout=HEARTBEAT_TTL_S + 180)
    assert done["status"] == "done", done["error"]
    assert done["attempts"] == 2 and done["runs"] == 1


def test_a_job_running_when_redis_is_killed_is_requeued_within_a_minute(stack):
    job = stack.submit(slow_job(seed=23))
    catch_running(stack, job["id"])
    stack.server.child.signal(signal.SIGKILL)  # no shutdown: what the AOF holds is what survives
    stack.server.child.process.wait()
    killed = time.monotonic()
    stack.server.start()
    again = stack.wait(job["id"], lambda r: r["attempts"] >= 2 or r["status"] != "running", timeout=60)
    assert time.monotonic() - killed < 60, again  # the heartbeat, not the 6 h visibility timeout
    done = stack.wait(job["id"], timeout=180)
    assert done["status"] == "done", done["error"]
    assert done["runs"] == 1


def test_a_job_recorded_but_never_sent_is_sent_by_a_worker(stack):
    # what an API killed between writing the record and sending the message leaves behind
    spec = normalize_job({**slow_job(seed=24), "inputs": {"dataset": "synthscenes:2:seed=24"}})
    stack.store.submit(spec.id, spec.model_dump(mode="json"), stale_after_s=3600)
    done = stack.wait(spec.id, timeout=LOST_MESSAGE_S + 60)
    assert done["status"] == "done", done["error"]
    assert "sent again" in stack.worker.log.read_text()
