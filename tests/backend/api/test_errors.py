"""Every error is JSON with a 4xx or a documented 5xx: a full Redis (even inside a Lua script) is a
507, a bad body is never a 500, and a 500 closes its connection."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.api import errors
from vitscope.contracts.store import Store

JOB = {"kind": "eigencam", "model": "random:vit-micro", "inputs": {"dataset": "synthscenes:2"}}


@pytest.fixture
def full_redis(redis):
    """The test Redis with almost no memory to spare: every write is refused with OOM."""
    before = redis.config_get("maxmemory")["maxmemory"]
    redis.config_set("maxmemory", 1)
    yield redis
    redis.config_set("maxmemory", before)


@pytest.mark.parametrize(
    "body",
    [
        {"kind": ["head-importance"], "model": "demo", "inputs": {"dataset": "synthscenes:4"}},
        {**JOB, "model": "a" * 300},
        {**JOB, "model": "/" + "a" * 300},
        {**JOB, "model": "~nobody-here/x"},
        {**JOB, "inputs": {"dataset": "synthsearch:1:layout=free:100000000"}},
        {**JOB, "inputs": {"dataset": "synthscenes:4:seed=99999999999999999999999"}},
        {**JOB, "inputs": {"images": ["a" * 64], "labels": [-7]}},
        {**JOB, "inputs": {"images": ["a" * 64], "labels": [10**30]}},
        {**JOB, "params": {"random_seed": 2**64}},
        {**JOB, "params": {"layers": [0] * 100_000}},
        {
            "kind": "scanpath",
            "model": "demo",
            "inputs": {"dataset": "synthsearch:1"},
            "params": {"seed": 2**70},
        },
        [1, 2],
        "x",
        None,
    ],
)
def test_the_bodies_of_issue_15_get_a_4xx_json_answer_and_nothing_is_stored(client, redis, body):
    response = client.post("/api/v1/jobs", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["message"]
    assert redis.dbsize() == 0


def test_a_full_redis_answers_507_for_uploads_and_submissions(client, full_redis):
    from tests.utils.uploads import image_bytes

    upload = client.post("/api/v1/images", files={"file": ("a.png", image_bytes(), "image/png")})
    assert upload.status_code == 507 and "store is full" in upload.json()["error"]["message"]
    submit = client.post("/api/v1/jobs", json=JOB)
    assert submit.status_code == 507


def test_reading_a_done_job_whose_tensors_were_evicted_answers_507_not_500_when_full(client, redis, settings):
    record = client.post("/api/v1/jobs", json=JOB).json()
    store = Store.from_url(settings.redis_url, settings.tensor_ttl_s)
    store.start(record["id"], "test/1")
    store.finish(record["id"], store.put_results({}, {"images": 2}))
    for key in redis.keys("vitscope:tensor:*"):
        redis.delete(key)  # evicted
    before = redis.config_get("maxmemory")["maxmemory"]
    redis.config_set("maxmemory", 1)
    try:
        response = client.get(f"/api/v1/jobs/{record['id']}")  # the requeue script hits OOM
        result = client.get(f"/api/v1/jobs/{record['id']}/results/summary")
    finally:
        redis.config_set("maxmemory", before)
    assert response.status_code == 507 and response.json()["error"]["status"] == 507
    assert result.status_code == 507


def test_a_500_is_json_and_closes_the_connection():
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("bug")

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    assert response.json() == {"error": {"status": 500, "message": "internal error: RuntimeError"}}
    assert response.headers["connection"] == "close"
