"""`POST /jobs` bounded before anything is queued: body cap, cost budget, quota, rate, model roots;
job ids that only the server can compute."""

import hashlib

import pytest
from fastapi.testclient import TestClient

from backend.api.deps import get_settings
from backend.api.main import create_app

JOB = {"kind": "eigencam", "model": "random:vit-micro", "inputs": {"dataset": "synthscenes:2"}}
HEAVY = {"kind": "head-importance", "model": "demo", "inputs": {"dataset": "synthscenes:100000"}}


def client_with(settings, **changes):
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings.model_copy(update=changes)
    return TestClient(app)


def test_a_job_over_the_cost_budget_is_refused_with_the_limit_and_its_setting(client, redis):
    response = client.post("/api/v1/jobs", json=HEAVY)
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "the limit is 200,000 GFLOP" in message and "VITSCOPE_MAX_JOB_GFLOP" in message
    assert redis.dbsize() == 0 and redis.llen("vitscope") == 0


def test_the_budget_is_configurable(settings, redis):
    with client_with(settings, max_job_gflop=1e9) as raised:
        assert raised.post("/api/v1/jobs", json=HEAVY).status_code == 202


def test_a_job_body_over_the_cap_is_refused_before_it_is_parsed(client, redis):
    body = {**JOB, "params": {"layers": [0] * 600_000}}  # 1.2 MB of JSON
    response = client.post("/api/v1/jobs", json=body)
    assert response.status_code == 413 and "limit of 1000000 bytes" in response.json()["error"]["message"]
    assert redis.dbsize() == 0


def test_job_ids_are_keyed_hashes_that_keep_deduplication(client, settings):
    first, again = (client.post("/api/v1/jobs", json=JOB).json()["id"] for _ in range(2))
    assert first == again  # the same request is the same job
    from vitscope.contracts.jobs import normalize_job

    spec = normalize_job(JOB)
    assert first != spec.id  # not the plain hash of the request
    assert first != hashlib.sha256(spec.canonical().encode()).hexdigest()[:24]
    with client_with(settings, job_id_secret="s3cret") as keyed:
        assert keyed.post("/api/v1/jobs", json=JOB).json()["id"] == spec.keyed_id(b"s3cret")


def test_job_records_count_against_the_client_quota_before_they_are_written(settings, redis):
    from backend.quota import RECORD_OVERHEAD
    from vitscope.contracts.jobs import normalize_job

    one_record = len(normalize_job(JOB).canonical()) + RECORD_OVERHEAD
    with client_with(settings, client_quota_bytes=one_record + 10) as small:
        assert small.post("/api/v1/jobs", json=JOB).status_code == 202
        other = {**JOB, "inputs": {"dataset": "synthscenes:3"}}
        response = small.post("/api/v1/jobs", json=other)
        assert small.post("/api/v1/jobs", json=JOB).status_code == 202  # an existing record is free
    assert (
        response.status_code == 507 and "VITSCOPE_CLIENT_QUOTA_BYTES" in response.json()["error"]["message"]
    )
    assert len(redis.keys("vitscope:job:*")) == 1


def test_submissions_are_rate_limited_per_client(settings):
    with client_with(settings, rate_jobs_per_minute=2) as limited:
        answers = [limited.post("/api/v1/jobs", json=JOB) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert "VITSCOPE_RATE_JOBS_PER_MINUTE" in answers[-1].json()["error"]["message"]


@pytest.mark.parametrize("folder", ["/root", "/nonexistent", "{root}/../outside", "{root}/missing"])
def test_folder_models_outside_the_roots_or_missing_get_one_and_the_same_error(settings, tmp_path, folder):
    root = tmp_path / "models"
    (root / "vit").mkdir(parents=True)
    with client_with(settings, model_roots=[str(root)]) as rooted:
        response = rooted.post("/api/v1/jobs", json={**JOB, "model": folder.format(root=root)})
        allowed = rooted.post("/api/v1/jobs", json={**JOB, "model": str(root / "vit")})
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "is not allowed or not found" in message and "VITSCOPE_MODEL_ROOTS" in message
    assert allowed.status_code == 202
