"""Over HTTP against a real worker: compute, read results, hit the cache, recompute after eviction."""

import io
from pathlib import Path

import numpy as np
import pytest

from tests.utils.uploads import image_bytes
from vitscope.vit.data.synthscenes import SynthScenes

pytestmark = pytest.mark.integration

MODEL = "random:vit-micro"


def eigencam(inputs, **params):
    return {"kind": "eigencam", "model": MODEL, "inputs": inputs, "params": params}


def test_health_sees_redis_and_the_worker(stack):
    assert stack.client.get("/api/v1/health").json() == {"status": "ok", "redis": True, "workers": 1}


def test_eigencam_on_an_uploaded_image_runs_to_done_and_serves_its_results(stack):
    image_id = stack.upload(image_bytes("JPEG", (80, 60)))
    job = stack.submit(eigencam({"images": [image_id]}))
    done = stack.wait(job["id"])
    assert done["status"] == "done", done["error"]
    assert done["progress"] == 1.0 and {"cam", "images", "top5_prob", "summary"} <= set(done["results"])
    cam = stack.client.get(f"/api/v1/jobs/{job['id']}/results/cam").json()
    assert cam["shape"] == [1, 2, 4, 4] and cam["dtype"] == "float32"
    assert np.min(cam["data"]) >= 0 and np.max(cam["data"]) <= 1
    raw = stack.client.get(f"/api/v1/jobs/{job['id']}/results/images", params={"format": "npy"}).content
    assert np.load(io.BytesIO(raw), allow_pickle=False).shape == (1, 32, 32, 3)
    summary = stack.client.get(f"/api/v1/jobs/{job['id']}/results/summary").json()
    assert len(summary["top5"][0]) == 5


def render_helpers_below(pid: int) -> list[int]:
    """The SynthScenes render helpers whose parent or grandparent is process `pid`."""

    def parent(of: int) -> int:
        try:  # the field after the command's closing parenthesis, then the state
            return int((Path("/proc") / str(of) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:  # it ended meanwhile
            return -1

    helpers = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        if b"vitscope.vit.data.render_pool" in command and pid in (
            parent(int(entry.name)),
            parent(parent(int(entry.name))),
        ):
            helpers.append(int(entry.name))
    return helpers


def test_a_large_synthscenes_job_is_rendered_by_the_workers_helpers(stack):
    job = eigencam({"dataset": "synthscenes:128:seed=21"}, sanity_check=False, faithfulness=False)
    done = stack.wait(stack.submit(job)["id"])
    assert done["status"] == "done", done["error"]
    raw = stack.client.get(f"/api/v1/jobs/{done['id']}/results/images", params={"format": "npy"}).content
    images = np.load(io.BytesIO(raw), allow_pickle=False)
    [(want, _, _)] = SynthScenes(128, seed=21, image_size=32).batches(128, workers=1)
    np.testing.assert_array_equal(images, want)  # the same bytes as rendering in this process
    assert len(render_helpers_below(stack.worker.child.process.pid)) == 2  # kept by the pool process


def test_an_identical_request_returns_the_same_job_without_recomputing(stack):
    job = eigencam({"dataset": "synthscenes:4:seed=11"}, sanity_check=False)
    first = stack.wait(stack.submit(job)["id"])
    stack.settle()
    queued_before = stack.redis.llen(stack.settings.queue)
    again = stack.submit({**job, "params": {"sanity_check": False, "batch_size": 32}})  # defaults spelled out
    assert again["id"] == first["id"] and again["status"] == "done"
    assert again["runs"] == 1 and again["updated"] == first["updated"]
    assert stack.redis.llen(stack.settings.queue) == queued_before == 0


def test_evicted_results_are_recomputed_from_the_stored_spec(stack):
    job_id = stack.wait(stack.submit(eigencam({"dataset": "synthscenes:3:seed=12"}, baselines=False))["id"])[
        "id"
    ]
    for ref in stack.store.job(job_id).results.values():
        stack.redis.delete(ref.key)  # what volatile-lru does under memory pressure
    response = stack.client.get(f"/api/v1/jobs/{job_id}/results/cam")
    assert response.status_code == 202 and "recomputing, retry" in response.json()["message"]
    done = stack.wait(job_id)
    assert done["status"] == "done" and done["runs"] == 2
    assert stack.client.get(f"/api/v1/jobs/{job_id}/results/cam").status_code == 200


def test_a_model_that_cannot_load_fails_the_job_with_its_message(stack):
    job = stack.submit({**eigencam({"dataset": "synthscenes:1"}), "model": "nobody-here/no-such-vit"})
    failed = stack.wait(job["id"])
    assert failed["status"] == "failed" and "nobody-here/no-such-vit" in failed["error"]
    result = stack.client.get(f"/api/v1/jobs/{job['id']}/results/cam")
    assert result.status_code == 409 and "failed" in result.json()["error"]["message"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"model": "random:vit-colossal"}, "random:vit-colossal"),
        ({"kind": "telepathy"}, "telepathy"),
        ({"params": {"wobble": 1}}, "wobble"),
    ],
    ids=["model", "kind", "parameter"],
)
def test_an_unknown_model_kind_or_parameter_is_a_422_naming_it(stack, change, named):
    stack.settle()
    before = stack.stored()
    response = stack.client.post("/api/v1/jobs", json={**eigencam({"dataset": "synthscenes:1"}), **change})
    assert response.status_code == 422 and named in response.json()["error"]["message"]
    assert any(named in p["msg"] for p in response.json()["error"]["problems"])
    assert stack.stored() == before
