"""Bearer tokens: 401 without one when authentication is on; the token's name is the client."""

import pytest

from tests.utils.auth import ALICE, BOB
from tests.utils.uploads import image_bytes

JOB = {"kind": "eigencam", "model": "random:vit-micro", "inputs": {"dataset": "synthscenes:2"}}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/jobs"),
        ("GET", "/api/v1/jobs/abc"),
        ("GET", "/api/v1/models"),
        ("GET", "/api/v1/images/" + "a" * 64),
        ("DELETE", "/api/v1/jobs/abc"),
    ],
)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic tok-alice-123", "tok-alice-123"])
def test_without_a_valid_bearer_token_every_route_answers_401(secured, redis, method, path, header):
    headers = {"Authorization": header} if header else {}
    response = secured.request(method, path, json=JOB, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in response.json()["error"]["message"]
    assert redis.dbsize() == 0


def test_health_stays_open_for_health_checks(secured):
    assert secured.get("/api/v1/health").status_code == 503  # degraded (no worker), not 401


def test_with_a_token_a_collaborator_reads_what_another_submitted(secured):
    job = secured.post("/api/v1/jobs", json=JOB, headers=ALICE)
    assert job.status_code == 202
    shared = secured.get(f"/api/v1/jobs/{job.json()['id']}", headers=BOB)
    assert shared.status_code == 200 and shared.json()["id"] == job.json()["id"]


def test_uploads_are_charged_to_the_token_s_name(secured, redis):
    response = secured.post(
        "/api/v1/images", files={"file": ("a.png", image_bytes(), "image/png")}, headers=ALICE
    )
    assert response.status_code == 200
    assert int(redis.hget("vitscope:quota:clients", "alice")) > len(image_bytes())


def test_auth_on_without_tokens_is_a_configuration_error():
    from pydantic import ValidationError

    from backend.settings import ApiSettings

    with pytest.raises(ValidationError, match="VITSCOPE_AUTH_TOKENS"):
        ApiSettings(auth=True, auth_tokens="")
