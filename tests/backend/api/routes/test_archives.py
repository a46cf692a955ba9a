"""`POST /archives`: an ImageFolder zip checked and stored; anything else refused, nothing stored.
`DELETE /archives/{id}`: by its uploader alone when authentication is on."""

import hashlib

from tests.utils.auth import ALICE, BOB, quota_state
from tests.utils.uploads import image_bytes, image_folder_zip, zip_of
from vitscope.contracts.store import blob_key


def upload(client, data, headers=None):
    return client.post(
        "/api/v1/archives", files={"file": ("set.zip", data, "application/zip")}, headers=headers
    )


def test_zip_with_class_folders_is_stored_by_its_hash(client, redis):
    data = image_folder_zip({"circle": 2, "star": 2})
    response = upload(client, data)
    assert response.status_code == 200
    assert response.json() == {
        "id": hashlib.sha256(data).hexdigest(),
        "images": 4,
        "classes": ["circle", "star"],
    }
    assert len(redis.keys("vitscope:blob:*")) == 1  # and the quota's counters


def test_not_a_zip_is_refused_and_nothing_is_stored(client, redis):
    response = upload(client, image_bytes())
    assert response.status_code == 415 and "not a zip" in response.json()["error"]["message"]
    assert redis.dbsize() == 0


def test_zip_without_class_folders_is_refused(client, redis):
    response = upload(client, zip_of({"a.png": image_bytes(), "notes.txt": b"hi"}))
    assert response.status_code == 422 and "class folders" in response.json()["error"]["message"]
    assert redis.dbsize() == 0


def test_delete_removes_the_zip_but_not_an_image_of_the_same_id_space(client, redis):
    archive_id = upload(client, image_folder_zip({"circle": 1})).json()["id"]
    image_id = client.post("/api/v1/images", files={"file": ("a.png", image_bytes(), "image/png")}).json()[
        "id"
    ]
    assert client.delete(f"/api/v1/archives/{image_id}").status_code == 404  # an image, not a zip
    assert client.delete(f"/api/v1/archives/{archive_id}").status_code == 204
    assert redis.exists(f"vitscope:blob:{archive_id}") == 0 and redis.exists(f"vitscope:blob:{image_id}") == 1


def test_only_its_uploader_may_delete_a_zip_when_authentication_is_on(secured, redis):
    archive_id = upload(secured, image_folder_zip({"circle": 1}), headers=ALICE).json()["id"]
    image_id = secured.post(
        "/api/v1/images", files={"file": ("a.png", image_bytes(), "image/png")}, headers=ALICE
    ).json()["id"]
    before = quota_state(redis)
    refused = secured.delete(f"/api/v1/archives/{archive_id}", headers=BOB)
    assert (
        refused.status_code == 403 and "only its uploader can delete it" in refused.json()["error"]["message"]
    )
    assert (
        secured.delete(f"/api/v1/archives/{image_id}", headers=BOB).status_code == 404
    )  # not a zip: as before
    assert redis.exists(blob_key(archive_id), blob_key(image_id)) == 2 and quota_state(redis) == before
    assert secured.delete(f"/api/v1/archives/{archive_id}", headers=ALICE).status_code == 204
    assert redis.exists(blob_key(archive_id)) == 0
