"""The job task: runs the registry's analysis on a real model, stores results, maps errors."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from vitscope.contracts.jobs import normalize_job
from vitscope.contracts.queue import TASK_NAME
from vitscope.contracts.store import Store, decode_array
from vitscope.vit.analysis import registry
from vitscope.vit.analysis.base import AnalysisResult
from vitscope.vit.heap import _glibc
from worker import tasks
from worker.celery_app import create_app
from worker.settings import WorkerSettings, resolve_device

MICRO = "random:vit-micro"


@pytest.fixture
def store(redis_url):
    return Store.from_url(redis_url, tensor_ttl_s=3600)


@pytest.fixture
def settings(redis_url):
    return WorkerSettings(redis_url=redis_url, device="cpu", progress_interval_s=0)


@pytest.fixture(scope="module")
def models():
    return tasks.ModelCache(size=2)


def submit(store, raw):
    spec = normalize_job(raw)
    store.submit(spec.id, spec.model_dump(mode="json"), stale_after_s=3600)
    return spec.id


def eigencam_job(store, n=2):
    raw = {"kind": "eigencam", "model": MICRO, "inputs": {"dataset": f"synthscenes:{n}"}}
    return submit(store, {**raw, "params": {"baselines": False, "sanity_check": False}})


def test_execute_runs_the_analysis_and_stores_its_results(store, settings, models):
    job_id = eigencam_job(store)
    assert tasks.execute(job_id, store, models, settings, "test/1") == "done"
    record = store.job(job_id)
    assert record.status == "done" and record.progress == 1.0 and record.runs == 1
    assert {"cam", "images", "summary"} <= set(record.results)
    cam = decode_array(store.result_bytes(record.results["cam"]))
    assert cam.shape == (2, 2, 4, 4) and cam.min() >= 0 and cam.max() <= 1


def test_execute_stores_the_float16_matrices_of_a_head_detail_job(store, settings, models):
    params = {"image": 1, "layer": 1}
    job_id = submit(
        store,
        {"kind": "head-detail", "model": MICRO, "inputs": {"dataset": "synthscenes:3"}, "params": params},
    )
    assert tasks.execute(job_id, store, models, settings, "test/1") == "done"
    results = store.job(job_id).results
    attention = decode_array(store.result_bytes(results["attention"]))
    assert attention.dtype == np.float16 and attention.shape == (1, 4, 17, 17)  # layer 1 of 2, 4 heads
    np.testing.assert_allclose(attention.astype(np.float32).sum(-1), 1, atol=2e-3)  # each query's softmax


def test_execute_skips_a_job_whose_results_are_stored(store, settings, models):
    job_id = eigencam_job(store)
    tasks.execute(job_id, store, models, settings, "test/1")
    updated = store.job(job_id).updated
    assert tasks.execute(job_id, store, models, settings, "test/1") == "done"
    assert store.job(job_id).runs == 1 and store.job(job_id).updated == updated


def test_execute_recomputes_a_done_job_whose_results_were_evicted(store, settings, models):
    job_id = eigencam_job(store)
    tasks.execute(job_id, store, models, settings, "test/1")
    store.redis.delete(store.job(job_id).results["cam"].key)
    tasks.execute(job_id, store, models, settings, "test/1")
    record = store.job(job_id)
    assert record.runs == 2 and store.results_present(record.results)


def test_a_model_that_cannot_load_fails_the_job_with_a_readable_message(store, settings, models):
    job_id = submit(
        store,
        {"kind": "eigencam", "model": "no-such-org/no-such-vit", "inputs": {"dataset": "synthscenes:1"}},
    )
    assert tasks.execute(job_id, store, models, settings, "test/1") == "failed"
    error = store.job(job_id).error
    assert "no-such-org/no-such-vit" in error and "internal error" not in error


def test_an_unexpected_exception_fails_the_job_as_internal_error(
    store, settings, models, monkeypatch, caplog
):
    def broken(lm, source, params, progress):
        raise KeyError("bug")

    real = registry.get("eigencam")
    monkeypatch.setattr(registry, "get", lambda kind: registry.Analysis(kind, broken, real.open_source))
    job_id = eigencam_job(store)
    assert tasks.execute(job_id, store, models, settings, "test/1") == "failed"
    assert store.job(job_id).error == "internal error: KeyError"
    assert "Traceback" in caplog.text or any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    ("arrays", "named"),
    [
        ({"bogus": np.zeros(3)}, "'bogus' is not declared"),
        ({"images": None}, "required array 'images' is missing"),
        ({"cam": np.zeros((2, 2, 4))}, "array 'cam' has shape (2, 2, 4), declared (N, L, h, w)"),
        ({"top5_idx": np.zeros((2, 5))}, "array 'top5_idx' has dtype float64, declared int"),
    ],
    ids=["undeclared", "missing", "wrong-shape", "wrong-dtype"],
)
def test_a_result_that_breaks_its_schema_fails_the_job_naming_the_array(
    store, settings, models, monkeypatch, arrays, named
):
    real = registry.get("eigencam")

    def off_contract(lm, source, params, progress):
        result = real.run(lm, source, params, progress)
        merged = {**result.arrays, **arrays}
        return AnalysisResult({k: v for k, v in merged.items() if v is not None}, result.summary)

    monkeypatch.setattr(registry, "get", lambda kind: registry.Analysis(kind, off_contract, real.open_source))
    job_id = eigencam_job(store)
    assert tasks.execute(job_id, store, models, settings, "test/1") == "failed"
    record = store.job(job_id)
    assert named in record.error and record.results == {}


def test_a_job_whose_worker_keeps_dying_is_failed_after_max_attempts(store, settings, models):
    job_id = eigencam_job(store)
    for _ in range(settings.max_attempts):
        store.start(job_id, "dead/1")  # each start a worker died during
    assert tasks.execute(job_id, store, models, settings, "test/1") == "failed"
    assert "died 3 times" in store.job(job_id).error


def test_execute_ignores_an_unknown_job(store, settings, models):
    assert tasks.execute("0" * 24, store, models, settings, "test/1") == "missing"


def test_model_cache_loads_once_and_drops_the_least_recently_used():
    cache = tasks.ModelCache(size=1)
    first = cache.get(MICRO, "cpu")
    assert cache.get(MICRO, "cpu") is first
    cache.get("random:deit-micro", "cpu")
    assert cache.get(MICRO, "cpu") is not first


def test_progress_writer_throttles_writes(store):
    store.submit("j1", {"kind": "eigencam"}, stale_after_s=60)
    writer = tasks.ProgressWriter(store, "j1", interval=3600)
    writer(0.1, "first")
    writer(0.5, "too soon")
    assert store.job("j1").message == "first"
    writer(1.0, "last")  # the final update always lands
    assert store.job("j1").progress == 1.0


def test_auto_device_is_cpu_without_a_gpu():
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_celery_app_speaks_json_only_and_acks_late():
    conf = create_app("redis://127.0.0.1:1/0", "q").conf
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1 and conf.worker_concurrency == 1
    assert conf.task_routes[TASK_NAME] == {"queue": "q"}


def test_results_live_in_the_job_record_not_in_a_celery_result_backend():
    app = create_app("redis://127.0.0.1:1/0", "q")
    assert app.conf.task_ignore_result and not app.conf.result_backend
    assert tasks.run_job.name == TASK_NAME and tasks.run_job.ignore_result


def test_the_worker_parent_imports_no_torch():
    code = "import sys, worker.celery_app, worker.tasks; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_registry_refuses_an_unknown_kind():
    with pytest.raises(Exception, match="unknown kind 'nope'"):
        registry.get("nope")


def test_registry_gives_image_kinds_the_shared_image_source():
    from vitscope.vit.data.inputs import open_source

    analysis = registry.get("eigencam")
    assert "eigencam" in registry.available()
    assert analysis.open_source is open_source and analysis.run.__module__ == "vitscope.vit.analysis.eigencam"


# cancel, limits, heartbeats, lost jobs -------------------------------------------------------------


def streaming(store, job_id, on_batch=None):
    """An analysis that streams its source one image a batch; returns the list of batches it saw."""
    from vitscope.vit.analysis.base import stream

    seen = []
    real = registry.get("eigencam")

    def run(lm, source, params, progress):
        for batch in stream(source, 1, lm.input_geometry, progress, "streamed"):
            seen.append(batch)
            if on_batch is not None:
                on_batch(len(seen))
        return real.run(lm, source, params, progress)

    return registry.Analysis("eigencam", run, real.open_source), seen


def test_a_running_job_cancelled_stops_within_one_batch(store, settings, models, monkeypatch):
    job_id = eigencam_job(store, n=20)
    analysis, seen = streaming(store, job_id, lambda n: store.cancel(job_id, "cancelled") if n == 2 else None)
    monkeypatch.setattr(registry, "get", lambda kind: analysis)
    assert tasks.execute(job_id, store, models, settings, "test/1") == "cancelled"
    record = store.job(job_id)
    assert len(seen) == 2 and record.status == "cancelled" and record.results == {}
    assert store.running_jobs() == [] and not store.redis.exists(f"vitscope:beat:{job_id}")


def test_a_job_over_its_soft_time_limit_fails_saying_so(store, redis_url, models, monkeypatch):
    settings = WorkerSettings(redis_url=redis_url, device="cpu", min_time_limit_s=0.01, max_time_limit_s=0.01)
    job_id = eigencam_job(store, n=20)
    analysis, seen = streaming(store, job_id, lambda n: __import__("time").sleep(0.05))
    monkeypatch.setattr(registry, "get", lambda kind: analysis)
    assert tasks.execute(job_id, store, models, settings, "test/1") == "failed"
    assert "over its time limit of 0 s" in store.job(job_id).error and len(seen) == 1


def test_a_job_over_its_memory_limit_fails_saying_so(store, redis_url, models):
    settings = WorkerSettings(redis_url=redis_url, device="cpu", job_memory_mb=1)
    job_id = eigencam_job(store)
    assert tasks.execute(job_id, store, models, settings, "test/1") == "failed"
    assert "over the per-job memory limit of 0.0 GiB" in store.job(job_id).error


def test_a_delivery_of_a_cancelled_or_failed_job_runs_nothing(store, settings, models):
    job_id = eigencam_job(store)
    store.cancel(job_id, "cancelled")
    assert tasks.execute(job_id, store, models, settings, "test/1") == "cancelled"
    assert store.job(job_id).attempts == 0


def test_after_a_worker_died_the_job_runs_again_with_half_the_batch_size():
    spec = normalize_job({"kind": "eigencam", "model": MICRO, "inputs": {"dataset": "synthscenes:2"}})
    assert tasks.smaller(spec, 1) is spec
    assert tasks.smaller(spec, 2).params["batch_size"] == spec.params["batch_size"] // 2
    assert tasks.smaller(spec, 3).params["batch_size"] == spec.params["batch_size"] // 4


def test_time_limits_follow_the_estimate_within_bounds():
    from worker.guard import hard_limit, time_limits

    assert time_limits(10, 5, 60, 3600) == (60, hard_limit(60))
    assert time_limits(100, 5, 60, 3600)[0] == 500
    assert time_limits(10**6, 5, 60, 3600)[0] == 3600


def test_a_jobs_time_limits_follow_its_cost_estimate(store, settings):
    small = normalize_job({"kind": "eigencam", "model": MICRO, "inputs": {"dataset": "synthscenes:2"}})
    huge = normalize_job(
        {"kind": "head-importance", "model": "demo", "inputs": {"dataset": "synthscenes:100000"}}
    )
    assert tasks.limits(small, store, settings).soft_s == settings.min_time_limit_s
    budget = tasks.limits(huge, store, settings)  # about 12 h at 50 GFLOP/s: capped
    assert budget.soft_s == settings.max_time_limit_s and budget.hard_s < settings.visibility_timeout_s


def test_worker_settings_keep_every_hard_limit_below_the_visibility_timeout():
    with pytest.raises(ValueError, match="below the visibility timeout"):
        WorkerSettings(visibility_timeout_s=3600, max_time_limit_s=3600)
    assert WorkerSettings().max_time_limit_s * 1.25 + 60 < WorkerSettings().visibility_timeout_s


def test_the_watchdog_beats_and_kills_its_process_past_the_hard_limit(store, monkeypatch):
    from worker import guard

    kills = []
    monkeypatch.setattr(guard.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    store.submit("j1", {"kind": "eigencam"}, stale_after_s=60)
    store.start("j1", "w/1", beat_ttl_s=30)
    limits = guard.Limits(soft_s=60, hard_s=1.5)
    with guard.JobGuard(store, "j1", "w/1", limits, lambda f, m: None, tick_s=0.05, beat_ttl_s=3):
        time.sleep(1.2)
        assert 0 < store.redis.ttl("vitscope:beat:j1") <= 3  # refreshed every second, with the guard's TTL
        time.sleep(0.6)
    assert kills and kills[0][1] == signal.SIGKILL
    assert "over its time limit" in store.job("j1").error


def test_the_reaper_requeues_and_resends_jobs_whose_heartbeat_is_gone(store):
    from worker.reaper import reap

    for job_id in ("lost", "alive"):
        store.submit(job_id, {"kind": "eigencam"}, stale_after_s=60)
        store.start(job_id, "w/1")
    store.redis.delete("vitscope:beat:lost")
    store.redis.hset("vitscope:job:lost", "updated", time.time() - 60)
    sent = []
    assert reap(store, sent.append) == ["lost"] and sent == ["lost"]
    assert store.job("lost").status == "queued" and store.job("alive").status == "running"
    assert reap(store, sent.append) == []


def test_a_queued_job_whose_message_is_lost_is_sent_again(store):
    from worker.reaper import resend_lost_messages

    for job_id in ("lost", "waiting", "delivered", "stranded"):
        store.submit(job_id, {"kind": "eigencam"}, stale_after_s=60)
    store.redis.rpush("q", b'{"headers": {"argsrepr": "[\'waiting\']"}}')
    # delivered just now (its worker is about to start it), or long ago to a worker that went away
    for tag, job_id, at in (("t1", "delivered", time.time()), ("t2", "stranded", time.time() - 120)):
        store.redis.hset("unacked", tag, f'[{{"headers": {{"argsrepr": "[\'{job_id}\']"}}}}, "", "q"]')
        store.redis.zadd("unacked_index", {tag: at})
    store.redis.zadd(
        "vitscope:queued",
        {job_id: time.time() - 90 for job_id in ("lost", "waiting", "delivered", "stranded")},
    )
    sent = []
    assert resend_lost_messages(store, ["q"], sent.append, waiting_s=60) == ["lost", "stranded"]
    assert sent == ["lost", "stranded"]
    assert resend_lost_messages(store, ["q"], sent.append, waiting_s=60) == []  # each waits again


POOL_PROCESS = """
import json, sys, torch
from vitscope.contracts.jobs import normalize_job
from vitscope.contracts.store import Store
from worker import tasks
from worker.guard import resident_bytes as resident
from worker.settings import WorkerSettings

url = sys.argv[1]
store, models = Store.from_url(url, tensor_ttl_s=3600), tasks.ModelCache(size=1)
settings = WorkerSettings(redis_url=url, device="cpu", progress_interval_s=0)
tasks._warm_up()  # as a new pool process does
ids = []
for seed in (1, 2):
    raw = {"kind": "eigencam", "model": "random:vit-micro", "inputs": {"dataset": f"synthscenes:2:seed={seed}"},
           "params": {"baselines": False, "sanity_check": False}}
    spec = normalize_job(raw)
    store.submit(spec.id, spec.model_dump(mode="json"), stale_after_s=3600)
    ids.append(spec.id)
statuses = [tasks.execute(ids[0], store, models, settings, "test/1")]  # the model stack loaded
x = torch.ones(64 * 2**20)  # a big tensor of this job, freed: kept resident for reuse
del x
kept = resident()
statuses.append(tasks.execute(ids[1], store, models, settings, "test/1"))
print(json.dumps({"statuses": statuses, "kept": kept, "after": resident()}))
"""


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only")
def test_a_pool_process_keeps_freed_memory_and_gives_it_back_after_each_job(redis_url):
    done = subprocess.run(
        [sys.executable, "-c", POOL_PROCESS, redis_url], capture_output=True, text=True, check=True
    )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["statuses"] == ["done", "done"]
    assert got["kept"] - got["after"] > 200 * 2**20  # the 256 MiB kept after the first job went back
