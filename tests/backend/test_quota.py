"""The quota on uploads and job records: charged before writing, per client, given back on release."""

import pytest

from backend.errors import ApiError
from backend.quota import RECORD_OVERHEAD, Quota
from vitscope.contracts.store import Store, blob_key


@pytest.fixture
def store(redis_url):
    return Store.from_url(redis_url, 3600)


def test_uploads_are_charged_once_and_refused_past_the_store_quota(store):
    quota = Quota(store.redis, store_bytes=3 * (1000 + RECORD_OVERHEAD + 100), client_bytes=0)
    ids = [quota.put_blob(store, bytes([i]) * 1000, {"kind": "image"}, "alice") for i in range(3)]
    assert quota.put_blob(store, bytes([0]) * 1000, {"kind": "image"}, "bob") == ids[0]  # exists: free
    with pytest.raises(ApiError) as caught:
        quota.put_blob(store, b"x" * 1000, {"kind": "image"}, "bob")
    assert caught.value.status == 507 and "VITSCOPE_STORE_QUOTA_BYTES" in caught.value.message
    assert store.blob(ids[2]) is not None and len(store.redis.keys("vitscope:blob:*")) == 3


def test_each_client_has_its_own_share(store):
    quota = Quota(store.redis, store_bytes=0, client_bytes=1000 + RECORD_OVERHEAD + 100)
    quota.put_blob(store, b"a" * 1000, {"kind": "image"}, "alice")
    with pytest.raises(ApiError, match="your quota"):
        quota.put_blob(store, b"b" * 1000, {"kind": "image"}, "alice")
    quota.put_blob(store, b"b" * 1000, {"kind": "image"}, "bob")
    assert quota.used("alice") == quota.used("bob") and quota.used() == 2 * quota.used("bob")


def test_release_gives_back_what_a_key_was_charged(store):
    quota = Quota(store.redis, store_bytes=0, client_bytes=0)
    blob_id = quota.put_blob(store, b"a" * 1000, {"kind": "image"}, "alice")
    charged = quota.used("alice")
    assert charged > 1000
    assert quota.release(blob_key(blob_id)) == charged
    assert quota.used() == 0 and quota.used("alice") == 0
    assert quota.release(blob_key(blob_id)) == 0  # only once


def test_the_owner_of_a_key_is_its_first_writer_until_its_charge_is_given_back(store):
    quota = Quota(store.redis, store_bytes=0, client_bytes=0)
    blob_id = quota.put_blob(store, b"a" * 1000, {"kind": "image"}, "alice smith")
    assert quota.put_blob(store, b"a" * 1000, {"kind": "image"}, "bob") == blob_id  # free, owns nothing
    assert quota.owner(blob_key(blob_id)) == "alice smith" and quota.used("bob") == 0
    assert quota.owner(blob_key("0" * 64)) is None  # never charged (or written before quotas existed)
    quota.release(blob_key(blob_id))
    assert quota.owner(blob_key(blob_id)) is None
