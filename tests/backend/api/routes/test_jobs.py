"""`POST /jobs`, `GET /jobs/{id}`, `GET /jobs/{id}/results/{name}`, `DELETE /jobs/{id}` against a real
Redis (no worker).

A worker's outcome is written with the same `Store` calls the worker makes.
"""

import io

import numpy as np
import pytest

from backend.quota import CHARGES, Quota
from tests.utils.auth import ALICE, BOB, changes_hands, charge_to, quota_state, refused
from tests.utils.uploads import image_bytes
from vitscope.contracts.store import Store, job_key

JOB = {"kind": "eigencam", "model": "random:vit-micro", "inputs": {"dataset": "synthscenes:2"}}


@pytest.fixture
def store(settings):
    return Store.from_url(settings.redis_url, settings.tensor_ttl_s)


def queued(redis, settings):
    """Messages waiting in the test's Celery queue."""
    return redis.llen(settings.queue)


def finish(store, job_id, arrays, summary):
    store.start(job_id, "test/1")
    store.finish(job_id, store.put_results(arrays, summary))


def test_post_job_returns_202_with_the_record_and_enqueues_it(client, redis, settings):
    response = client.post("/api/v1/jobs", json=JOB)
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued" and job["progress"] == 0 and job["results"] == []
    assert job["params"]["batch_size"] == 32  # defaults filled in
    assert job["dashboard_url"] == f"http://dash.test/cam?job={job['id']}"
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert queued(redis, settings) == 1


def test_the_same_request_gets_the_same_id_and_is_enqueued_once(client, redis, settings):
    first = client.post("/api/v1/jobs", json=JOB).json()
    second = client.post("/api/v1/jobs", json={**JOB, "params": {"batch_size": 32}}).json()
    assert first["id"] == second["id"] and second["created"] == first["created"]
    assert queued(redis, settings) == 1


def test_a_failed_job_may_be_resubmitted(client, redis, settings, store):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    store.fail(job_id, "the model exploded")
    assert client.get(f"/api/v1/jobs/{job_id}").json()["error"] == "the model exploded"
    assert client.post("/api/v1/jobs", json=JOB).json()["status"] == "queued"
    assert queued(redis, settings) == 2


@pytest.mark.parametrize(
    ("change", "loc", "named"),
    [
        ({"model": "random:vit-gigantic"}, ["model"], "random:vit-gigantic"),
        ({"kind": "mind-reading"}, ["kind"], "mind-reading"),
        ({"params": {"wibble": 3}}, ["params", "wibble"], "wibble"),
        ({"inputs": {"dataset": "imagenet:5"}}, ["inputs", "dataset"], "imagenet:5"),
    ],
    ids=["model", "kind", "parameter", "dataset"],
)
def test_bad_job_is_a_422_naming_the_problem(client, redis, change, loc, named):
    response = client.post("/api/v1/jobs", json={**JOB, **change})
    assert response.status_code == 422
    error = response.json()["error"]
    assert named in error["message"]
    assert any(p["loc"] == loc and named in p["msg"] for p in error["problems"])
    assert redis.dbsize() == 0


def test_job_on_images_never_uploaded_is_a_422_naming_the_missing_id(client, redis):
    uploaded = client.post("/api/v1/images", files={"file": ("a.png", image_bytes(), "image/png")}).json()[
        "id"
    ]
    missing = "f" * 64
    response = client.post("/api/v1/jobs", json={**JOB, "inputs": {"images": [uploaded, missing]}})
    assert response.status_code == 422
    [problem] = response.json()["error"]["problems"]
    assert problem["loc"] == ["inputs", "images", 1] and missing in problem["msg"]
    assert len(redis.keys("vitscope:job:*")) == 0  # only the upload and its quota charge


def test_job_body_that_is_not_json_is_a_422(client):
    response = client.post("/api/v1/jobs", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]["status"] == 422


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("head-importance", "/heads?hi="),
        ("attention-profile", "/heads?ap="),
        ("attention-patterns", "/heads?pat="),
    ],
)
def test_dashboard_url_follows_the_kind(client, kind, path):
    job = client.post("/api/v1/jobs", json={**JOB, "kind": kind}).json()
    assert job["dashboard_url"] == f"http://dash.test{path}{job['id']}"


def test_unknown_job_is_a_404_saying_how_to_compute_it(client):
    for url in ("/api/v1/jobs/abc", "/api/v1/jobs/abc/results/cam"):
        response = client.get(url)
        assert response.status_code == 404 and "POST /api/v1/jobs" in response.json()["error"]["message"]


def test_results_of_an_unfinished_job_are_a_409_to_retry(client, store):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    store.start(job_id, "test/1")
    store.set_progress(job_id, 0.25, "Eigen-CAM: 1/4 images")
    response = client.get(f"/api/v1/jobs/{job_id}/results/cam")
    assert response.status_code == 409 and "25%" in response.json()["error"]["message"]
    assert response.headers["retry-after"]


def test_done_job_serves_arrays_as_json_and_npy_and_the_summary_as_an_object(client, store):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    cam = np.arange(6, dtype=np.float32).reshape(1, 2, 3) / 10
    finish(
        store,
        job_id,
        {"cam": cam, "top5_idx": np.arange(5)[None]},
        {"grid": [2, 3], "spearman": float("nan")},
    )
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "done" and job["results"] == ["cam", "summary", "top5_idx"] and job["runs"] == 1
    body = client.get(f"/api/v1/jobs/{job_id}/results/cam").json()
    assert body["name"] == "cam" and body["shape"] == [1, 2, 3] and body["dtype"] == "float32"
    np.testing.assert_allclose(body["data"], cam)
    raw = client.get(f"/api/v1/jobs/{job_id}/results/cam", params={"format": "npy"})
    assert raw.headers["content-type"] == "application/octet-stream"
    np.testing.assert_array_equal(np.load(io.BytesIO(raw.content), allow_pickle=False), cam)
    assert client.get(f"/api/v1/jobs/{job_id}/results/summary").json() == {"grid": [2, 3], "spearman": None}


def test_a_result_is_served_sliced_by_its_leading_indices(client, store):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    attention = np.arange(2 * 3 * 4 * 4, dtype=np.float16).reshape(2, 3, 4, 4)
    finish(store, job_id, {"attention": attention}, {})
    url = f"/api/v1/jobs/{job_id}/results/attention"
    raw = client.get(url, params={"format": "npy", "index": [1, 2]})
    np.testing.assert_array_equal(np.load(io.BytesIO(raw.content), allow_pickle=False), attention[1, 2])
    assert client.get(url, params={"index": [1]}).json()["shape"] == [3, 4, 4]
    whole = client.get(url, params={"format": "npy"})  # not the slice cached before
    assert np.load(io.BytesIO(whole.content), allow_pickle=False).shape == (2, 3, 4, 4)
    for index in ([2], [0, 3], [0, 0, 0, 0, 0], [-1]):
        response = client.get(url, params={"index": index})
        assert response.status_code == 400, index
        assert "attention" in response.json()["error"]["message"]
    assert client.get(f"/api/v1/jobs/{job_id}/results/summary", params={"index": [0]}).status_code == 400


def test_an_interactive_kinds_job_goes_to_the_interactive_queue(client, redis, settings):
    body = {**JOB, "kind": "head-pruning", "params": {"image": 1, "layer": 0, "head": 1}}
    assert client.post("/api/v1/jobs", json=body).status_code == 202
    assert redis.llen(f"{settings.queue}.interactive") == 1 and queued(redis, settings) == 0
    assert client.post("/api/v1/jobs", json=JOB).status_code == 202
    assert queued(redis, settings) == 1  # a dataset-wide kind's job: the usual queue


def test_non_finite_values_become_null(client, store):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    finish(store, job_id, {"x": np.array([1.0, np.nan, np.inf])}, {})
    assert client.get(f"/api/v1/jobs/{job_id}/results/x").json()["data"] == [1.0, None, None]


def test_unknown_result_name_is_a_404_listing_the_results(client, store):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    finish(store, job_id, {"cam": np.zeros(2)}, {})
    response = client.get(f"/api/v1/jobs/{job_id}/results/cam2")
    assert response.status_code == 404
    assert (
        "'cam2'" in response.json()["error"]["message"]
        and "cam, summary" in response.json()["error"]["message"]
    )


def test_an_unchanged_result_answers_304_to_its_etag(client, store):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    finish(store, job_id, {"cam": np.zeros(2)}, {})
    etag = client.get(f"/api/v1/jobs/{job_id}/results/cam").headers["etag"]
    again = client.get(f"/api/v1/jobs/{job_id}/results/cam", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""


def test_evicted_results_requeue_the_job_and_answer_202_retry(client, redis, settings, store):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    redis.delete(settings.queue)  # as if a worker took it
    finish(store, job_id, {"cam": np.zeros(2)}, {})
    redis.delete(store.job(job_id).results["cam"].key)  # what volatile-lru does under memory pressure
    response = client.get(f"/api/v1/jobs/{job_id}/results/cam")
    assert response.status_code == 202 and "recomputing, retry" in response.json()["message"]
    assert response.json()["status"] == "queued" and queued(redis, settings) == 1
    second = client.get(f"/api/v1/jobs/{job_id}/results/cam")
    assert second.status_code == 409 and queued(redis, settings) == 1  # requeued once


def test_job_status_notices_evicted_results_too(client, redis, settings, store):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    redis.delete(settings.queue)
    finish(store, job_id, {"cam": np.zeros(2)}, {"a": 1})
    redis.delete(store.job(job_id).results["summary"].key)
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "queued" and job["results"] == [] and queued(redis, settings) == 1


def test_records_and_uploads_are_kept_without_ttl_while_results_expire(client, redis, store):
    image_id = client.post("/api/v1/images", files={"file": ("a.png", image_bytes(), "image/png")}).json()[
        "id"
    ]
    job_id = client.post("/api/v1/jobs", json={**JOB, "inputs": {"images": [image_id]}}).json()["id"]
    finish(store, job_id, {"cam": np.zeros(2)}, {})
    assert redis.ttl(f"vitscope:job:{job_id}") == -1 and redis.ttl(f"vitscope:blob:{image_id}") == -1
    assert redis.ttl(store.job(job_id).results["cam"].key) > 0


def test_delete_cancels_a_queued_job_and_it_may_be_submitted_again(client, redis, settings):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    response = client.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "cancelled"
    assert client.post("/api/v1/jobs", json=JOB).json()["status"] == "queued"
    assert queued(redis, settings) == 2


def test_delete_cancels_a_running_job_with_202(client, store):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    store.start(job_id, "test/1")
    response = client.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert store.status(job_id) == "cancelled"


def test_delete_of_a_finished_job_removes_its_record_and_results(client, redis, store):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    other = client.post("/api/v1/jobs", json={**JOB, "params": {"batch_size": 2}}).json()["id"]
    finish(store, job_id, {"cam": np.zeros(2)}, {})
    finish(store, other, {"cam": np.ones(2)}, {})
    assert client.get(f"/api/v1/jobs/{job_id}/results/cam").status_code == 200  # now in the API's cache
    keys = [ref.key for ref in store.job(job_id).results.values()]
    response = client.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 204 and response.content == b""
    assert redis.exists(*keys) == 0 and store.job(job_id) is None
    assert client.get(f"/api/v1/jobs/{job_id}/results/cam").status_code == 404
    assert client.get(f"/api/v1/jobs/{other}/results/cam").status_code == 200


def test_delete_of_an_unknown_job_is_a_404(client):
    response = client.delete("/api/v1/jobs/abc")
    assert response.status_code == 404 and "no job abc" in response.json()["error"]["message"]


def test_openapi_documents_the_answers_of_delete(client):
    operations = client.get("/openapi.json").json()["paths"]
    assert {"200", "202", "204", "403", "404"} <= set(
        operations["/api/v1/jobs/{job_id}"]["delete"]["responses"]
    )
    assert {"204", "403", "404"} <= set(operations["/api/v1/images/{image_id}"]["delete"]["responses"])
    assert {"204", "403", "404"} <= set(operations["/api/v1/archives/{archive_id}"]["delete"]["responses"])


def test_only_its_submitter_may_cancel_a_job_when_authentication_is_on(secured, redis, settings, store):
    job_id = secured.post("/api/v1/jobs", json=JOB, headers=ALICE).json()["id"]
    assert secured.post("/api/v1/jobs", json=JOB, headers=BOB).json()["id"] == job_id  # free: owns nothing
    before = quota_state(redis)
    refused(
        secured,
        f"/api/v1/jobs/{job_id}",
        f"job {job_id} was submitted by another client: only its submitter can cancel or delete it "
        "(ask them, or the operator)",
    )
    assert store.status(job_id) == "queued" and queued(redis, settings) == 1
    assert quota_state(redis) == before and Quota(redis, 0, 0).owner(job_key(job_id)) == "alice"
    response = secured.delete(f"/api/v1/jobs/{job_id}", headers=ALICE)
    assert response.status_code == 200 and store.status(job_id) == "cancelled"


def test_a_job_that_changes_hands_between_the_owner_check_and_the_delete_is_checked_again(
    secured, redis, store, monkeypatch
):
    from backend.api.routes import jobs as route

    job_id = secured.post("/api/v1/jobs", json=JOB, headers=ALICE).json()["id"]
    finish(store, job_id, {"cam": np.zeros(2)}, {})
    changes_hands(monkeypatch, route, redis, job_key(job_id))
    response = secured.delete(f"/api/v1/jobs/{job_id}", headers=ALICE)
    assert response.status_code == 403  # the second look saw bob's job, not hers
    assert store.status(job_id) == "done" and store.results_present(store.job(job_id).results)
    assert Quota(redis, 0, 0).owner(job_key(job_id)) == "bob"


def test_a_job_says_whether_its_caller_may_cancel_or_delete_it(secured, client):
    created = secured.post("/api/v1/jobs", json=JOB, headers=ALICE).json()
    assert created["may_delete"] is True
    job_id = created["id"]
    assert secured.get(f"/api/v1/jobs/{job_id}", headers=ALICE).json()["may_delete"] is True
    assert secured.get(f"/api/v1/jobs/{job_id}", headers=BOB).json()["may_delete"] is False
    assert secured.post("/api/v1/jobs", json=JOB, headers=BOB).json()["may_delete"] is False  # free, not his
    assert client.get(f"/api/v1/jobs/{job_id}").json()["may_delete"] is True  # authentication off: anyone


def test_a_recomputing_result_says_whether_its_caller_may_cancel_the_job(secured, redis, settings, store):
    job_id = secured.post("/api/v1/jobs", json=JOB, headers=ALICE).json()["id"]
    redis.delete(settings.queue)
    finish(store, job_id, {"cam": np.zeros(2)}, {})
    redis.delete(store.job(job_id).results["cam"].key)  # evicted: the next read queues it again
    first = secured.get(f"/api/v1/jobs/{job_id}/results/cam", headers=BOB)
    assert first.status_code == 202 and first.json()["may_delete"] is False
    redis.delete(settings.queue)
    finish(store, job_id, {"cam": np.zeros(2)}, {})
    redis.delete(store.job(job_id).results["cam"].key)
    second = secured.get(f"/api/v1/jobs/{job_id}/results/cam", headers=ALICE)
    assert second.status_code == 202 and second.json()["may_delete"] is True


def test_another_token_holder_cannot_delete_a_finished_job_or_its_results(secured, redis, store):
    job_id = secured.post("/api/v1/jobs", json=JOB, headers=ALICE).json()["id"]
    finish(store, job_id, {"cam": np.zeros(2)}, {})
    keys = [ref.key for ref in store.job(job_id).results.values()]
    before = quota_state(redis)
    assert secured.delete(f"/api/v1/jobs/{job_id}", headers=BOB).status_code == 403
    assert store.job(job_id).status == "done" and redis.exists(*keys) == len(keys)
    assert quota_state(redis) == before
    assert (
        secured.get(f"/api/v1/jobs/{job_id}/results/cam", headers=BOB).status_code == 200
    )  # reading is open
    assert secured.delete(f"/api/v1/jobs/{job_id}", headers=ALICE).status_code == 204
    assert store.job(job_id) is None and redis.exists(*keys) == 0 and Quota(redis, 0, 0).used("alice") == 0


def test_with_authentication_off_anyone_may_cancel_a_job(client, redis, store):
    job_id = client.post("/api/v1/jobs", json=JOB).json()["id"]
    charge_to(redis, job_key(job_id), "ip:10.0.0.7")  # submitted from another address
    assert client.delete(f"/api/v1/jobs/{job_id}").status_code == 200
    assert store.status(job_id) == "cancelled"


def test_a_job_without_a_recorded_owner_may_be_cancelled_by_any_token_holder(secured, redis, store):
    job_id = secured.post("/api/v1/jobs", json=JOB, headers=ALICE).json()["id"]
    redis.hdel(CHARGES, job_key(job_id))  # as a record written before quotas existed
    assert secured.delete(f"/api/v1/jobs/{job_id}", headers=BOB).status_code == 200
    assert store.status(job_id) == "cancelled"


def test_delete_of_an_unknown_job_is_a_404_to_any_token_holder_even_if_a_charge_is_left(secured, redis):
    redis.hset(CHARGES, job_key("abc"), "600 alice")
    response = secured.delete("/api/v1/jobs/abc", headers=BOB)
    assert response.status_code == 404 and "no job abc" in response.json()["error"]["message"]


def test_a_deployment_precision_is_the_dtype_of_requests_that_do_not_set_one(client, settings):
    plain = client.post("/api/v1/jobs", json=JOB).json()
    settings.job_dtype = "bfloat16"
    unset = client.post("/api/v1/jobs", json=JOB).json()
    chosen = client.post("/api/v1/jobs", json={**JOB, "params": {"dtype": "float32"}}).json()
    patterns = {
        "kind": "attention-patterns",
        "model": "random:vit-micro",
        "inputs": {"dataset": "synthscenes:2"},
    }
    assert plain["params"]["dtype"] == "float32"  # unset: the kind's default
    assert unset["params"]["dtype"] == "bfloat16" and unset["id"] != plain["id"]
    assert chosen["params"]["dtype"] == "float32" and chosen["id"] == plain["id"]  # the client's choice wins
    settings.job_dtype = None
    spelled = client.post("/api/v1/jobs", json={**JOB, "params": {"dtype": "bfloat16"}}).json()
    assert spelled["id"] == unset["id"]  # the id follows the precision that runs, however it was chosen
    assert client.post("/api/v1/jobs", json=patterns).status_code == 202  # a kind without dtype is as it was
    settings.job_dtype = "bfloat16"
    assert "dtype" not in client.post("/api/v1/jobs", json=patterns).json()["params"]
