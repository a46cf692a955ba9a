"""Cancel and delete against the real stack: a running job stops within a batch and frees the
worker; a queued one never runs; deleting removes a job's record and tensors and an upload, nothing else."""

import time

import pytest

from tests.integration.test_worker_loss import catch_running
from tests.utils.uploads import image_bytes

pytestmark = pytest.mark.integration


def long_job(seed):
    """An eigencam job of 4000 one-image batches: minutes of work, so it is surely running when cancelled."""
    inputs = {"dataset": f"synthscenes:4000:seed={seed}"}
    params = {"batch_size": 1, "baselines": False, "sanity_check": False}
    return {"kind": "eigencam", "model": "random:vit-micro", "inputs": inputs, "params": params}


def small_job(seed):
    inputs = {"dataset": f"synthscenes:2:seed={seed}"}
    return {"kind": "eigencam", "model": "random:vit-micro", "inputs": inputs, "params": {"baselines": False}}


def test_a_running_job_is_cancelled_within_a_batch_and_the_worker_takes_the_next_job(stack):
    job = stack.submit(long_job(seed=41))
    catch_running(stack, job["id"])
    stack.wait(job["id"], lambda r: r["progress"] > 0, timeout=60)  # into its batches
    following = stack.submit(small_job(seed=42))
    response = stack.client.delete(f"/api/v1/jobs/{job['id']}")
    cancelled = time.monotonic()
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    beat = f"vitscope:beat:{job['id']}"
    while stack.redis.exists(beat) and time.monotonic() - cancelled < 10:
        time.sleep(0.02)
    assert not stack.redis.exists(beat), "the worker did not stop within a batch"
    done = stack.wait(following["id"], timeout=120)
    assert done["status"] == "done", done["error"]
    record = stack.client.get(f"/api/v1/jobs/{job['id']}").json()
    assert record["status"] == "cancelled" and record["results"] == [] and record["progress"] < 0.5
    assert "stopped: the job is cancelled" in stack.worker.log.read_text()


def test_a_queued_job_cancelled_never_runs(stack):
    blocker = stack.submit(long_job(seed=43))
    catch_running(stack, blocker["id"])
    queued = stack.submit(small_job(seed=44))
    assert stack.client.delete(f"/api/v1/jobs/{queued['id']}").status_code == 200
    assert stack.client.delete(f"/api/v1/jobs/{blocker['id']}").status_code == 202
    probe = stack.submit(small_job(seed=45))  # behind both in the queue
    assert stack.wait(probe["id"], timeout=120)["status"] == "done"
    record = stack.client.get(f"/api/v1/jobs/{queued['id']}").json()
    assert record["status"] == "cancelled" and record["attempts"] == 0


def test_delete_removes_a_jobs_record_and_tensors_and_an_upload_and_nothing_else(stack):
    image_id = stack.upload(image_bytes("PNG", (40, 40), seed=46))
    kept_image = stack.upload(image_bytes("PNG", (40, 40), seed=47))
    job = {"kind": "eigencam", "model": "random:vit-micro", "params": {"baselines": False}}
    doomed = stack.wait(stack.submit({**job, "inputs": {"images": [image_id]}})["id"])
    kept = stack.wait(stack.submit({**job, "inputs": {"images": [kept_image]}})["id"])
    assert doomed["status"] == kept["status"] == "done"
    tensors = {ref.key.encode() for ref in stack.store.job(doomed["id"]).results.values()}
    before = data_keys(stack.redis)
    assert stack.client.delete(f"/api/v1/jobs/{doomed['id']}").status_code == 204
    assert stack.client.delete(f"/api/v1/images/{image_id}").status_code == 204
    gone = before - data_keys(stack.redis)
    assert gone == {f"vitscope:job:{doomed['id']}".encode(), f"vitscope:blob:{image_id}".encode(), *tensors}
    assert stack.client.get(f"/api/v1/jobs/{doomed['id']}").status_code == 404
    assert stack.client.get(f"/api/v1/jobs/{kept['id']}/results/cam").status_code == 200
    assert stack.client.delete(f"/api/v1/jobs/{doomed['id']}").status_code == 404


def data_keys(redis):
    """Every record, upload and result key in the store."""
    return {key for pattern in ("job", "blob", "tensor") for key in redis.scan_iter(f"vitscope:{pattern}:*")}
