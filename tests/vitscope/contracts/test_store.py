"""The Redis store: npy/JSON encoding, content-addressed results with a TTL, durable records."""

import json
import time

import numpy as np
import pytest

from vitscope.contracts.store import (
    ResultRef,
    Store,
    blob_key,
    decode_array,
    encode_array,
    job_key,
    to_jsonable,
)

SPEC = {"kind": "eigencam", "model": "demo", "inputs": {"dataset": "synthscenes:2:seed=0"}, "params": {}}
DAY = 24 * 3600


@pytest.fixture
def store(redis_url):
    return Store.from_url(redis_url, tensor_ttl_s=30 * DAY)


def test_arrays_round_trip_as_npy():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    data = encode_array(array)
    assert data.startswith(b"\x93NUMPY")
    np.testing.assert_array_equal(decode_array(data), array)


def test_object_arrays_are_refused_rather_than_pickled():
    with pytest.raises(ValueError):
        encode_array(np.array([{"a": 1}], dtype=object))


def test_to_jsonable_turns_nan_into_null_and_numpy_into_python():
    value = {"a": np.float32(1.5), "b": [float("nan"), np.inf], "c": np.arange(2)}
    assert json.dumps(to_jsonable(value), allow_nan=False) == '{"a": 1.5, "b": [null, null], "c": [0, 1]}'


def test_results_are_stored_under_content_hash_keys_with_a_ttl(store):
    refs = store.put_results({"a": np.ones(3), "b": np.ones(3)}, {"x": 1})
    assert refs["a"].key == refs["b"].key  # same bytes, one key
    assert refs["a"].shape == (3,) and refs["a"].dtype == "float64"
    assert refs["summary"].shape is None and refs["summary"].dtype == "json"
    assert 29 * DAY < store.redis.ttl(refs["a"].key) <= 30 * DAY
    assert json.loads(store.result_bytes(refs["summary"])) == {"x": 1}


def test_reading_a_result_refreshes_its_ttl(store):
    ref = store.put_results({"a": np.zeros(2)}, {})["a"]
    store.redis.expire(ref.key, 100)
    assert store.result_bytes(ref) is not None
    assert store.redis.ttl(ref.key) > 100


def test_results_present_is_false_once_any_result_is_evicted(store):
    refs = store.put_results({"a": np.zeros(2), "b": np.ones(2)}, {})
    assert store.results_present(refs)
    store.redis.delete(refs["b"].key)
    assert not store.results_present(refs)
    assert store.result_bytes(refs["b"]) is None


def test_records_and_uploads_have_no_ttl(store):
    blob_id = store.put_blob(b"bytes", {"kind": "image"})
    store.submit("j1", SPEC, stale_after_s=3600)
    assert store.redis.ttl(blob_key(blob_id)) == -1
    assert store.redis.ttl(job_key("j1")) == -1


def test_blob_id_is_the_sha256_of_the_bytes(store):
    import hashlib

    blob_id = store.put_blob(b"hello", {"kind": "image"})
    assert blob_id == hashlib.sha256(b"hello").hexdigest()
    assert store.blob(blob_id) == b"hello"
    assert store.blob_metas([blob_id, "0" * 64]) == [{"kind": "image"}, None]


def test_submit_creates_a_queued_record_once(store):
    assert store.submit("j1", SPEC, stale_after_s=3600) is True
    assert store.submit("j1", SPEC, stale_after_s=3600) is False
    record = store.job("j1")
    assert record.status == "queued" and record.spec == SPEC and record.runs == 0


def test_a_done_job_is_not_submitted_again(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    store.finish("j1", store.put_results({"a": np.ones(1)}, {}))
    assert store.submit("j1", SPEC, stale_after_s=0) is False
    assert store.job("j1").status == "done"


def test_a_failed_job_may_be_submitted_again(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    store.fail("j1", "bad input")
    assert store.submit("j1", SPEC, stale_after_s=3600) is True
    record = store.job("j1")
    assert record.status == "queued" and record.error is None


def test_a_running_job_silent_for_too_long_counts_as_lost(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    store.start("j1", "w/1")
    assert store.submit("j1", SPEC, stale_after_s=3600) is False
    store.redis.hset(job_key("j1"), "updated", time.time() - 7200)
    assert store.submit("j1", SPEC, stale_after_s=3600) is True


def test_finish_records_the_manifest_and_counts_runs(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    assert store.start("j1", "host/42") == 1
    store.set_progress("j1", 0.5, "half")
    assert store.job("j1").progress == 0.5 and store.job("j1").worker == "host/42"
    refs = store.put_results({"cam": np.zeros((2, 3))}, {"grid": [1, 1]})
    store.finish("j1", refs)
    record = store.job("j1")
    assert record.status == "done" and record.progress == 1.0 and record.runs == 1
    assert record.results == refs and isinstance(record.results["cam"], ResultRef)
    assert record.results["cam"].shape == (2, 3)


def test_requeue_moves_only_done_jobs_back_to_queued(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    assert store.requeue("j1", "evicted") is False  # still queued
    store.finish("j1", store.put_results({}, {}))
    assert store.requeue("j1", "evicted") is True
    assert store.requeue("j1", "evicted") is False  # once, however many readers notice
    record = store.job("j1")
    assert record.status == "queued" and record.message == "evicted" and record.attempts == 0


def test_start_counts_attempts_of_the_current_computation(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    assert [store.start("j1", "w/1") for _ in range(3)] == [1, 2, 3]
    store.fail("j1", "x")
    store.submit("j1", SPEC, stale_after_s=3600)
    assert store.start("j1", "w/1") == 1


def test_ping_is_false_when_redis_is_unreachable():
    from vitscope.stack import free_port

    assert Store.from_url(f"redis://127.0.0.1:{free_port()}/0", 60).ping() is False
