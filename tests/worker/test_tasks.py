"""The job task: runs the registry's analysis on a real model, stores results, maps errors."""

import subprocess
import sys

import numpy as np
import pytest

from vitscope.contracts.jobs import normalize_job
from vitscope.contracts.queue import TASK_NAME
from vitscope.contracts.store import Store, decode_array
from vitscope.vit.analysis import registry
from vitscope.vit.analysis.base import AnalysisResult
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
