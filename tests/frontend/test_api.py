"""The HTTP client: readable errors, cached immutable results, derived jobs."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest

from frontend.api import ApiClient, ApiError, derive_job, upload_bytes


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def client(handler) -> ApiClient:
    return ApiClient("http://api.test/api/v1", transport=httpx.MockTransport(handler))


def test_api_error_envelope_becomes_a_readable_message():
    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "error": {
                "status": 422,
                "message": "bad job",
                "problems": [{"loc": ["params", "x"], "msg": "unknown"}],
            }
        }
        return httpx.Response(422, json=body)

    with pytest.raises(ApiError) as caught:
        client(handler).submit("eigencam", "demo", {}, {"x": 1})
    assert caught.value.status == 422
    assert str(caught.value) == "bad job (params.x: unknown)"


def test_unreachable_api_says_where_it_looked():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ApiError) as caught:
        client(handler).health()
    assert "http://api.test/api/v1" in str(caught.value)
    assert "vitscope up" in str(caught.value)


def test_results_are_fetched_once_as_npy():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, content=_npy(np.arange(6.0).reshape(2, 3)))

    api = client(handler)
    first = api.result("j1", "accuracy_drop")
    second = api.result("j1", "accuracy_drop")
    np.testing.assert_array_equal(first, second)
    assert len(calls) == 1 and calls[0].endswith("format=npy")
    assert not first.flags.writeable


def test_only_finished_job_records_are_cached():
    status = {"value": "running"}
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, json={"id": "j1", "status": status["value"]})

    api = client(handler)
    api.job("j1")
    status["value"] = "done"
    assert api.job("j1")["status"] == "done"
    api.job("j1")
    assert len(calls) == 2


def test_evicted_results_drop_the_cached_record_and_say_so():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/results/cam"):
            return httpx.Response(202, json={"id": "j1", "status": "queued"})
        return httpx.Response(200, json={"id": "j1", "status": "done"})

    api = client(handler)
    api.job("j1")
    with pytest.raises(ApiError, match="recomputed"):
        api.result("j1", "cam")
    assert api._cache.get(("job", "j1")) is None


def test_derive_job_keeps_the_id_when_params_already_match():
    record = {
        "id": "j1",
        "kind": "attention-patterns",
        "model": "demo",
        "inputs": {"dataset": "synthscenes:8:seed=0"},
        "params": {"detail_layer": 2, "detail_head": 1, "detail_image": 0},
        "status": "done",
    }
    posted = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posted.append(json.loads(request.content))
            return httpx.Response(202, json={"id": "j2", "status": "queued"})
        return httpx.Response(200, json=record)

    api = client(handler)
    assert derive_job(api, "j1", {"detail_layer": 2, "detail_head": 1}) == "j1"
    assert not posted
    assert derive_job(api, "j1", {"detail_layer": 5}) == "j2"
    assert posted[0]["params"] == {"detail_layer": 5, "detail_head": 1, "detail_image": 0}
    assert posted[0]["inputs"] == record["inputs"]


def test_upload_bytes_decodes_dash_upload_contents():
    assert upload_bytes("data:image/png;base64,aGVsbG8=") == b"hello"
    with pytest.raises(ApiError):
        upload_bytes("hello")


def test_cancel_sends_delete_and_forgets_the_cached_record():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        if request.method == "GET":
            return httpx.Response(200, json={"id": "j1", "status": "done"})
        if request.url.path.endswith("/j1"):
            return httpx.Response(204)
        return httpx.Response(202, json={"id": "j2", "status": "cancelled"})

    api = client(handler)
    api.job("j1")  # a done record is cached
    assert api.cancel("j1") is None  # finished: deleted
    assert api.cancel("j2") == {"id": "j2", "status": "cancelled"}
    api.job("j1")
    assert calls.count(("GET", "/api/v1/jobs/j1")) == 2
    assert ("DELETE", "/api/v1/jobs/j2") in calls
