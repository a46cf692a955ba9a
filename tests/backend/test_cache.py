"""The in-process cache of rendered results: bounded in bytes, least recently used out."""

import numpy as np

from backend.cache import Rendered, ResultCache
from vitscope.contracts.store import ResultRef

REF = ResultRef("vitscope:tensor:x", (1,), "float32")


def item(size):
    return Rendered(b"x" * size, "application/json", '"e"', REF)


def test_cache_drops_the_least_recently_used_beyond_its_budget():
    cache = ResultCache(max_bytes=10)
    cache.put(("a", "cam", "json"), item(4))
    cache.put(("b", "cam", "json"), item(4))
    cache.get(("a", "cam", "json"))  # a is now the most recent
    cache.put(("c", "cam", "json"), item(4))
    assert cache.get(("b", "cam", "json")) is None
    assert cache.get(("a", "cam", "json")) and cache.get(("c", "cam", "json"))


def test_a_body_larger_than_the_budget_is_not_cached():
    cache = ResultCache(max_bytes=3)
    cache.put(("a", "cam", "json"), item(4))
    assert cache.get(("a", "cam", "json")) is None


def test_a_served_result_is_answered_from_the_cache_without_redis(client, settings, redis):
    from vitscope.contracts.store import Store

    store = Store.from_url(settings.redis_url, settings.tensor_ttl_s)
    job = {"kind": "eigencam", "model": "random:vit-micro", "inputs": {"dataset": "synthscenes:1"}}
    job_id = client.post("/api/v1/jobs", json=job).json()["id"]
    store.finish(job_id, store.put_results({"cam": np.ones(3)}, {}))
    first = client.get(f"/api/v1/jobs/{job_id}/results/cam").json()
    redis.delete(store.job(job_id).results["cam"].key)
    assert client.get(f"/api/v1/jobs/{job_id}/results/cam").json() == first  # same content hash, same bytes
