"""`POST /images`, `GET /images/{id}`: real format, caps, full decode; a refused upload stores nothing.
`DELETE /images/{id}`: by its uploader alone when authentication is on."""

import hashlib

import pytest

from backend.quota import CHARGES, Quota
from tests.utils.auth import ALICE, BOB, changes_hands, charge_to, quota_state, refused
from tests.utils.uploads import header_only_png, image_bytes, truncated_png
from vitscope.contracts.store import blob_key


def upload(client, data, field="file", name="x.png", headers=None):
    return client.post("/api/v1/images", files={field: (name, data, "image/png")}, headers=headers)


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_upload_returns_the_content_hash_and_serves_the_bytes_back(client, fmt, content_type):
    data = image_bytes(fmt, (40, 30))
    response = upload(client, data, name="misleading.gif")
    assert response.status_code == 200
    assert response.json() == {
        "id": hashlib.sha256(data).hexdigest(),
        "width": 40,
        "height": 30,
        "format": fmt,
    }
    served = client.get(f"/api/v1/images/{response.json()['id']}")
    assert served.content == data and served.headers["content-type"] == content_type


def test_the_same_image_uploaded_twice_is_stored_once(client, redis):
    data = image_bytes()
    assert upload(client, data).json()["id"] == upload(client, data).json()["id"]
    assert len(redis.keys("vitscope:blob:*")) == 1  # and the quota's counters


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"GIF89a but not really", 415, "not an image"),
        (truncated_png(), 422, "truncated"),
        (header_only_png(20_000, 20_000), 413, "400.0 MP"),
        (b"\0" * 2_000_001, 413, "larger than the limit"),
    ],
    ids=["empty", "not-an-image", "truncated-png", "20000x20000-png", "too-many-bytes"],
)
def test_bad_upload_gets_a_json_4xx_and_stores_nothing(client, redis, data, status, words):
    response = upload(client, data)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["status"] == status and words in error["message"]
    assert redis.dbsize() == 0


def test_upload_in_the_wrong_form_field_is_a_422_naming_the_field(client, redis):
    response = upload(client, image_bytes(), field="image")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["problems"][0]["loc"] == ["body", "file"] and "'file'" in error["message"]
    assert redis.dbsize() == 0


def test_declared_body_over_the_cap_is_refused_before_it_is_read(client, redis):
    response = client.post(
        "/api/v1/images",
        content=b"x" * 10,
        headers={"content-type": "multipart/form-data; boundary=b", "content-length": "999999999"},
    )
    assert response.status_code == 413 and "limit" in response.json()["error"]["message"]


def test_streamed_body_over_the_cap_is_cut_off(client, redis):
    chunks = (b"x" * 500_000 for _ in range(8))  # no content-length: sent chunked
    response = client.post(
        "/api/v1/images", content=chunks, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 413 and response.json()["error"]["status"] == 413
    assert redis.dbsize() == 0


def test_unknown_image_is_a_404_saying_how_to_upload(client):
    response = client.get(f"/api/v1/images/{'0' * 64}")
    assert response.status_code == 404 and "POST /api/v1/images" in response.json()["error"]["message"]


def test_a_full_store_is_a_507_saying_so(tmp_path, start_redis):
    from fastapi.testclient import TestClient

    from backend.api.deps import get_settings
    from backend.api.main import create_app
    from backend.settings import ApiSettings

    server = start_redis(tmp_path, maxmemory="1mb")  # uploads have no TTL: nothing can be evicted
    try:
        app = create_app()
        app.dependency_overrides[get_settings] = lambda: ApiSettings(redis_url=server.url)
        response = upload(TestClient(app), image_bytes("PNG", (800, 800)))
        assert response.status_code == 507 and "full" in response.json()["error"]["message"]
    finally:
        server.stop()


def test_delete_removes_the_image_and_a_second_delete_is_a_404(client, redis):
    image_id = client.post("/api/v1/images", files={"file": ("a.png", image_bytes(), "image/png")}).json()[
        "id"
    ]
    other = client.post("/api/v1/images", files={"file": ("b.png", image_bytes(seed=5), "image/png")}).json()[
        "id"
    ]
    assert client.delete(f"/api/v1/images/{image_id}").status_code == 204
    assert client.get(f"/api/v1/images/{image_id}").status_code == 404
    assert client.get(f"/api/v1/images/{other}").status_code == 200
    response = client.delete(f"/api/v1/images/{image_id}")
    assert response.status_code == 404 and "nothing to delete" in response.json()["error"]["message"]


def test_only_its_uploader_may_delete_an_image_when_authentication_is_on(secured, redis):
    data = image_bytes()
    image_id = upload(secured, data, headers=ALICE).json()["id"]
    assert upload(secured, data, headers=BOB).json()["id"] == image_id  # free: owns nothing
    before = quota_state(redis)
    refused(
        secured,
        f"/api/v1/images/{image_id}",
        f"image {image_id} was uploaded by another client: only its uploader can delete it "
        "(ask them, or the operator)",
    )
    assert secured.get(f"/api/v1/images/{image_id}", headers=BOB).content == data
    assert quota_state(redis) == before and Quota(redis, 0, 0).owner(blob_key(image_id)) == "alice"
    assert secured.delete(f"/api/v1/images/{image_id}", headers=ALICE).status_code == 204
    assert redis.exists(blob_key(image_id)) == 0 and Quota(redis, 0, 0).used("alice") == 0


def test_with_authentication_off_anyone_may_delete_an_image(client, redis):
    image_id = upload(client, image_bytes()).json()["id"]
    charge_to(redis, blob_key(image_id), "ip:10.0.0.7")  # uploaded from another address
    assert client.delete(f"/api/v1/images/{image_id}").status_code == 204
    assert redis.exists(blob_key(image_id)) == 0 and Quota(redis, 0, 0).used() == 0


def test_an_image_without_a_recorded_owner_may_be_deleted_by_any_token_holder(secured, redis):
    image_id = upload(secured, image_bytes(), headers=ALICE).json()["id"]
    redis.hdel(CHARGES, blob_key(image_id))  # as an upload stored before quotas existed
    assert secured.delete(f"/api/v1/images/{image_id}", headers=BOB).status_code == 204
    assert redis.exists(blob_key(image_id)) == 0


def test_delete_of_an_unknown_image_is_a_404_to_any_token_holder(secured):
    response = secured.delete(f"/api/v1/images/{'0' * 64}", headers=BOB)
    assert response.status_code == 404 and "nothing to delete" in response.json()["error"]["message"]


def test_an_upload_that_changes_hands_between_the_owner_check_and_the_delete_is_checked_again(
    secured, redis, monkeypatch
):
    from backend.api.routes import images as route

    image_id = upload(secured, image_bytes(), headers=ALICE).json()["id"]
    changes_hands(monkeypatch, route, redis, blob_key(image_id))
    assert secured.delete(f"/api/v1/images/{image_id}", headers=ALICE).status_code == 403
    assert redis.exists(blob_key(image_id)) and Quota(redis, 0, 0).owner(blob_key(image_id)) == "bob"
