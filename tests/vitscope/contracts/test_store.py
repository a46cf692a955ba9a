"""The Redis store: npy/JSON encoding, content-addressed results with a TTL, durable records."""

import json
import time

import numpy as np
import pytest

from vitscope.contracts.store import (
    RUNNING,
    ResultRef,
    Store,
    StoreBusy,
    beat_key,
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


# cancel, delete, heartbeats ------------------------------------------------------------------------


def test_cancel_settles_a_queued_job_and_it_may_be_submitted_again(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    assert store.cancel("j1", "cancelled") == "queued"
    assert store.job("j1").status == "cancelled"
    assert store.submit("j1", SPEC, stale_after_s=3600) is True
    assert store.job("j1").status == "queued"


def test_a_cancelled_running_job_stays_cancelled_whatever_its_worker_writes(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    store.start("j1", "w/1")
    assert store.cancel("j1", "cancelled") == "running"
    store.set_progress("j1", 0.5, "still going")
    assert store.status("j1") == "cancelled" and store.running_jobs() == []


def test_cancel_leaves_settled_and_unknown_jobs_alone(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    store.finish("j1", store.put_results({"a": np.ones(1)}, {}))
    assert store.cancel("j1", "cancelled") == "done" and store.status("j1") == "done"
    assert store.cancel("nope", "cancelled") is None


def test_delete_job_removes_its_record_and_tensors_and_nothing_else(store):
    for job_id, value in (("j1", 1.0), ("j2", 2.0)):
        store.submit(job_id, SPEC, stale_after_s=3600)
        store.finish(job_id, store.put_results({"a": np.full(3, value)}, {"v": value}))
    blob = store.put_blob(b"image", {"kind": "image"})
    keys = [ref.key for ref in store.job("j1").results.values()]
    assert store.delete_job("j1") == "done"
    assert store.job("j1") is None and store.redis.exists(*keys) == 0
    assert store.results_present(store.job("j2").results) and store.blob(blob) == b"image"
    assert store.delete_job("j1") is None


def test_delete_job_leaves_a_queued_or_running_job_alone(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    assert store.delete_job("j1") == "queued" and store.job("j1") is not None


def test_atomically_runs_the_plans_writes_when_its_key_stayed_as_read(store):
    store.redis.set("k", "a")

    def plan(pipe):
        seen = store.redis.get("k")
        pipe.multi()
        pipe.set("k", seen + b"!")
        return seen

    assert store.atomically("k", plan) == b"a" and store.redis.get("k") == b"a!"


def test_atomically_plans_again_when_its_key_changed_meanwhile(store):
    store.redis.set("k", "a")
    seen = []

    def plan(pipe):
        seen.append(store.redis.get("k"))
        if len(seen) == 1:
            store.redis.set("k", "b")  # another client, between the read and the write
        pipe.multi()
        pipe.set("k", seen[-1] + b"!")

    store.atomically("k", plan)
    assert seen == [b"a", b"b"] and store.redis.get("k") == b"b!"


def test_atomically_gives_up_on_a_key_that_never_holds_still(store):
    def plan(pipe):
        store.redis.incr("k")
        pipe.multi()
        pipe.set("done", "1")

    with pytest.raises(StoreBusy):
        store.atomically("k", plan, attempts=3)
    assert store.redis.get("k") == b"3" and store.redis.get("done") is None


def test_start_beats_and_finish_clears_the_beat(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    store.start("j1", "w/1", beat_ttl_s=30)
    assert 0 < store.redis.ttl(beat_key("j1")) <= 30 and store.running_jobs() == ["j1"]
    store.finish("j1", store.put_results({}, {}))
    assert not store.redis.exists(beat_key("j1")) and store.running_jobs() == []


def test_a_running_job_whose_heartbeat_is_gone_is_requeued_once(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    store.start("j1", "w/1")
    assert store.requeue_lost("j1", "lost", lost_after_s=0) is False  # its heartbeat is alive
    store.redis.delete(beat_key("j1"))
    assert store.requeue_lost("j1", "lost", lost_after_s=60) is False  # updated too recently
    assert store.requeue_lost("j1", "lost", lost_after_s=0) is True
    assert store.requeue_lost("j1", "lost", lost_after_s=0) is False
    record = store.job("j1")
    assert record.status == "queued" and record.message == "lost" and record.attempts == 1
    assert not store.redis.sismember(RUNNING, "j1")


def test_resubmitting_a_running_job_whose_heartbeat_is_gone_requeues_it(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    store.start("j1", "w/1")
    assert store.submit("j1", SPEC, stale_after_s=3600, lost_after_s=0) is False  # alive
    store.redis.delete(beat_key("j1"))
    assert store.submit("j1", SPEC, stale_after_s=3600, lost_after_s=0) is True
    assert store.job("j1").status == "queued" and store.running_jobs() == []


def test_the_queued_index_holds_exactly_the_queued_jobs(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    store.submit("j2", SPEC, stale_after_s=3600)
    store.submit("j3", SPEC, stale_after_s=3600)
    assert store.queued_jobs(0) == ["j1", "j2", "j3"] and store.queued_jobs(3600) == []
    store.start("j1", "w/1")
    store.cancel("j2", "cancelled")
    store.fail("j3", "could not be queued")
    assert store.queued_jobs(0) == []
    store.redis.delete(beat_key("j1"))
    assert store.requeue_lost("j1", "lost", lost_after_s=0)
    assert store.queued_jobs(0) == ["j1"]


def test_still_queued_restarts_the_wait_or_forgets_a_job_no_longer_queued(store):
    store.submit("j1", SPEC, stale_after_s=3600)
    store.submit("j2", SPEC, stale_after_s=3600)
    store.redis.hset(job_key("j2"), "status", "done")  # settled without passing through the index
    assert store.still_queued("j1") and not store.still_queued("j2")
    assert store.queued_jobs(0) == ["j1"]
