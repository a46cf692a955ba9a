"""Issue 15's reproductions replayed against the real stack (real Redis, real Celery worker),
scaled down: bounded 4xx before queueing, 507 (never 500) when the store is full, the zip CPU
bomb refused, no 5xx for the listed bodies, EXIF-correct pixels, 401 without a token, 403 for
deleting another client's job."""

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from backend.api.deps import get_settings
from backend.api.main import create_app
from tests.utils.auth import ALICE, BOB, TOKENS
from tests.utils.uploads import bzip2_bomb

pytestmark = pytest.mark.integration

MICRO = "random:vit-micro"


def unchanged(stack, request):
    """Send `request(client)`; return the answer, asserting no job, upload or message was added."""
    stack.settle()
    before = stack.stored()
    response = request(stack.client)
    assert stack.stored() == before
    return response


@pytest.mark.parametrize(
    "body",
    [
        {
            "kind": "eigencam",
            "model": MICRO,
            "inputs": {"dataset": "synthscenes:1"},
            "params": {"layers": [0] * 10_000},
        },
        {"kind": "scanpath", "model": "demo", "inputs": {"dataset": "synthsearch:1:layout=free:100000000"}},
        {"kind": "head-importance", "model": "demo", "inputs": {"dataset": "synthscenes:100000"}},
        {"kind": ["head-importance"], "model": "demo", "inputs": {"dataset": "synthscenes:4"}},
        {"kind": "eigencam", "model": "a" * 300, "inputs": {"dataset": "synthscenes:1"}},
        {
            "kind": "eigencam",
            "model": MICRO,
            "inputs": {"dataset": "synthscenes:1:seed=18446744073709551616"},
        },
        {"kind": "eigencam", "model": MICRO, "inputs": {"images": ["a" * 64], "labels": [-7]}},
        {"kind": "eigencam", "model": MICRO, "inputs": {"images": ["a" * 64], "labels": [10**30]}},
    ],
    ids=[
        "layers-10M",
        "free-layout",
        "13-hour-head-importance",
        "kind-list",
        "long-spec",
        "seed-2^64",
        "label--7",
        "label-1e30",
    ],
)
def test_unbounded_requests_get_a_4xx_before_anything_is_queued(stack, body):
    response = unchanged(stack, lambda client: client.post("/api/v1/jobs", json=body))
    assert 400 <= response.status_code < 500 and response.json()["error"]["message"]


def test_the_bzip2_cpu_bomb_is_refused_and_not_stored(stack):
    bomb = bzip2_bomb()  # 100 members x 19.9 MB of zeros
    response = unchanged(
        stack,
        lambda client: client.post("/api/v1/archives", files={"file": ("bomb.zip", bomb, "application/zip")}),
    )
    assert response.status_code == 413 and "the limit is" in response.json()["error"]["message"]


def test_a_done_job_whose_tensors_were_evicted_reads_as_507_when_redis_is_full(stack):
    job = {"kind": "attention-profile", "model": MICRO, "inputs": {"dataset": "synthscenes:2:seed=1515"}}
    record = stack.wait(stack.submit(job)["id"])
    assert record["status"] == "done", record
    for name in record["results"]:
        ref = stack.store.job(record["id"]).results[name]
        stack.redis.delete(ref.key)  # evicted
    before = stack.redis.config_get("maxmemory")["maxmemory"]
    stack.redis.config_set("maxmemory", 1)
    try:
        answers = [
            stack.client.get(f"/api/v1/jobs/{record['id']}"),
            stack.client.get(f"/api/v1/jobs/{record['id']}/results/summary"),
            stack.client.post("/api/v1/jobs", json={**job, "inputs": {"dataset": "synthscenes:2:seed=1516"}}),
        ]
    finally:
        stack.redis.config_set("maxmemory", before)
    assert [a.status_code for a in answers] == [507, 507, 507]
    assert all(a.json()["error"]["status"] == 507 for a in answers)


def test_an_exif_rotated_photo_is_analysed_upright(stack):
    pixels = np.zeros((24, 72, 3), np.uint8)
    pixels[:, :24] = (255, 0, 0)  # the left third is red as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90° clockwise: the red third is on top, the photo portrait
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", exif=exif, quality=95)
    uploaded = stack.client.post(
        "/api/v1/images", files={"file": ("phone.jpg", out.getvalue(), "image/jpeg")}
    )
    assert (uploaded.json()["width"], uploaded.json()["height"]) == (24, 72)
    job = {
        "kind": "eigencam",
        "model": MICRO,
        "inputs": {"images": [uploaded.json()["id"]]},
        "params": {"baselines": False, "sanity_check": False},
    }
    record = stack.wait(stack.submit(job)["id"])
    assert record["status"] == "done", record
    sizes = stack.client.get(f"/api/v1/jobs/{record['id']}/results/original_sizes").json()["data"]
    assert sizes == [[72, 24]]  # (height, width): upright, as the API reported
    image = np.asarray(stack.client.get(f"/api/v1/jobs/{record['id']}/results/images").json()["data"])
    top, bottom = image[0, 2, image.shape[2] // 2], image[0, -3, image.shape[2] // 2]
    assert top[0] > 150 and top[1] < 100 and bottom[0] < 100  # red on top, as a person sees it


def test_with_auth_on_no_token_gets_401_and_a_token_holder_s_job_runs_and_is_hers_to_delete(stack):
    settings = stack.settings.model_copy(update={"auth": True, "auth_tokens": TOKENS})
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    job = {"kind": "attention-profile", "model": MICRO, "inputs": {"dataset": "synthscenes:2:seed=1517"}}
    with TestClient(app) as secured:
        refused = unchanged(stack, lambda _client: secured.post("/api/v1/jobs", json=job))
        accepted = secured.post("/api/v1/jobs", json=job, headers=ALICE)
        assert refused.status_code == 401 and accepted.status_code == 202
        url = f"/api/v1/jobs/{accepted.json()['id']}"
        assert secured.get(url).status_code == 401
        record = stack.wait(accepted.json()["id"])
        assert record["status"] == "done", record
        assert secured.delete(url, headers=BOB).status_code == 403  # a collaborator reads, never deletes
        assert secured.get(f"{url}/results/summary", headers=BOB).status_code == 200
        assert secured.delete(url, headers=ALICE).status_code == 204
