"""Job records, uploads and results survive a Redis restart (AOF); the worker reconnects."""

import pytest

from tests.utils.uploads import image_bytes

pytestmark = pytest.mark.integration


def test_records_survive_a_redis_restart_and_the_stack_keeps_working(stack):
    image_id = stack.upload(image_bytes("PNG", (50, 50), seed=31))
    job = {"kind": "eigencam", "model": "random:vit-micro", "inputs": {"images": [image_id]}}
    done = stack.wait(stack.submit(job)["id"])
    assert done["status"] == "done"
    stack.server.restart()
    after = stack.client.get(f"/api/v1/jobs/{done['id']}").json()
    assert after["status"] == "done" and after["created"] == done["created"] and after["runs"] == 1
    assert stack.client.get(f"/api/v1/jobs/{done['id']}/results/cam").status_code == 200
    assert stack.client.get(f"/api/v1/images/{image_id}").content == image_bytes("PNG", (50, 50), seed=31)
    # a new job still runs: the worker reconnected to the restarted Redis
    fresh = stack.submit({**job, "params": {"baselines": False}})
    assert stack.wait(fresh["id"], timeout=120)["status"] == "done"
