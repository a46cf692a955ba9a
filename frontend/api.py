"""The dashboard's only door to the analyses: a small HTTP client of the vitscope API.

The frontend never imports torch or worker code; everything it shows comes through here.
Results of a finished job never change (a job id is a content hash of its spec), so arrays
and summaries are kept in a byte-bounded in-process cache: re-opening a view is instant.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx
import numpy as np

from frontend.auth import current_token
from frontend.settings import get_settings

log = logging.getLogger(__name__)

JobRecord = dict[str, Any]
"""`GET /jobs/{id}`: id, kind, model, inputs, params, status, progress, message, error, results, ..."""


@dataclass
class ApiError(Exception):
    """A failed API call, with a message a person can act on (never a stack trace)."""

    message: str
    status: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        details = "; ".join(_problem_text(p) for p in self.problems if p.get("msg"))
        if details and details not in self.message:
            return f"{self.message} ({details})"
        return self.message

    @property
    def not_found(self) -> bool:
        """True when the API said the thing does not exist (404)."""
        return self.status == 404


def _problem_text(problem: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in problem.get("loc") or [])
    return f"{loc}: {problem['msg']}" if loc else str(problem["msg"])


class _ByteLRU:
    """A thread-safe LRU cache bounded by the total size of its values in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, ...], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def drop(self, key: tuple[str, ...]) -> None:
        with self._lock:
            item = self._items.pop(key, None)
            if item is not None:
                self._bytes -= item[1]

    def put(self, key: tuple[str, ...], value: Any, size: int) -> None:
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._items) > 1:
                self._bytes -= self._items.popitem(last=False)[1][1]


class ApiClient:
    """Synchronous client of `/api/v1` (Dash callbacks run in worker threads, so sync is simplest)."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        cache_bytes: int = 512 * 2**20,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)
        self._cache = _ByteLRU(cache_bytes)

    # -- plumbing ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, accept: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        token = current_token()  # the visitor's, passed on: the API counts each person
        if token:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": f"Bearer {token}"}
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ApiError(
                f"The vitscope API at {self.base_url} did not answer in time ({method} {path})."
            ) from exc
        except httpx.HTTPError as exc:
            raise ApiError(
                f"Cannot reach the vitscope API at {self.base_url}: is it running (`vitscope up`)?"
            ) from exc
        if response.status_code >= 400 and response.status_code not in accept:
            raise _error_from(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(f"The API sent a reply that is not JSON ({method} {path}).") from exc

    # -- endpoints --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """`GET /health`: status, redis, workers (a degraded API answers 503 with the same body)."""
        return dict(self._json("GET", "/health", accept=(503,)))

    def models(self) -> list[dict[str, Any]]:
        """`GET /models`: the suggested model specs with descriptions."""
        return list(self._json("GET", "/models"))

    def upload_image(self, filename: str, content: bytes) -> dict[str, Any]:
        """`POST /images`: store one image; returns {id, width, height, format}."""
        return dict(self._json("POST", "/images", files={"file": (filename, content)}))

    def upload_archive(self, filename: str, content: bytes) -> dict[str, Any]:
        """`POST /archives`: store an ImageFolder zip; returns {id, images}."""
        return dict(self._json("POST", "/archives", files={"file": (filename, content)}))

    def image_bytes(self, image_id: str) -> bytes:
        """`GET /images/{id}`: the stored image file (cached: images never change)."""
        key = ("image", image_id)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._request("GET", f"/images/{image_id}").content
            self._cache.put(key, cached, len(cached))
        return bytes(cached)

    def submit(self, kind: str, model: str, inputs: dict[str, Any], params: dict[str, Any]) -> JobRecord:
        """`POST /jobs`: queue (or find, when the same spec was asked before) a job; returns its record."""
        body = {"kind": kind, "model": model, "inputs": inputs, "params": params}
        return dict(self._json("POST", "/jobs", json=body))

    def job(self, job_id: str) -> JobRecord:
        """`GET /jobs/{id}`: the job record; a finished job's record is cached."""
        key = ("job", job_id)
        cached = self._cache.get(key)
        if cached is not None:
            return dict(cached)
        record = dict(self._json("GET", f"/jobs/{job_id}"))
        if record.get("status") == "done":
            self._cache.put(key, record, 4096)
        return record

    def cancel(self, job_id: str) -> JobRecord | None:
        """`DELETE /jobs/{id}`: cancel a queued or running job (returns its record, now `cancelled`),
        or delete a finished one (returns None)."""
        self._cache.drop(("job", job_id))
        response = self._request("DELETE", f"/jobs/{job_id}")
        return None if response.status_code == 204 else dict(response.json())

    def result(self, job_id: str, name: str, index: tuple[int, ...] = ()) -> np.ndarray:
        """`GET /jobs/{id}/results/{name}?format=npy`: one named result array, or with `index` its slice
        array[index] cut by the API (a view fetches what it draws, not a whole model's matrices); cached."""
        key = ("result", job_id, name, *map(str, index))
        cached = self._cache.get(key)
        if cached is None:
            params: dict[str, Any] = {"format": "npy", "index": list(index)}
            response = self._request("GET", f"/jobs/{job_id}/results/{name}", params=params)
            self._check_recomputing(job_id, response)
            raw = response.content
            try:
                cached = np.load(io.BytesIO(raw), allow_pickle=False)
            except ValueError as exc:
                raise ApiError(f"Result {name!r} of job {job_id} is not a readable array.") from exc
            cached.setflags(write=False)  # shared between callbacks: nobody may change it in place
            self._cache.put(key, cached, int(cached.nbytes))
        return np.asarray(cached)

    def summary(self, job_id: str) -> dict[str, Any]:
        """`GET /jobs/{id}/results/summary`: the job's JSON summary (cached)."""
        key = ("summary", job_id)
        cached = self._cache.get(key)
        if cached is None:
            response = self._request("GET", f"/jobs/{job_id}/results/summary")
            self._check_recomputing(job_id, response)
            cached = response.json()
            self._cache.put(key, cached, 16_384)
        return dict(cached)

    def _check_recomputing(self, job_id: str, response: httpx.Response) -> None:
        """A 202 on a result means its tensors were evicted and the job was queued again."""
        if response.status_code == 202:
            self._cache.drop(("job", job_id))  # the cached "done" record is no longer true
            raise ApiError(
                f"The results of job {job_id[:12]} had expired and are being recomputed; "
                "this view updates when they are back.",
                202,
            )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


def _error_from(response: httpx.Response) -> ApiError:
    """Turn an error reply into an ApiError with the API's own message when it sent one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return ApiError(str(error["message"]), response.status_code, list(error.get("problems") or []))
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return ApiError(body["detail"], response.status_code)
    if response.status_code == 404:
        return ApiError(f"Not found: {response.request.url.path}", 404)
    return ApiError(
        f"The API answered {response.status_code} to {response.request.method} {response.request.url.path}.",
        response.status_code,
    )


@lru_cache(maxsize=1)
def get_client() -> ApiClient:
    """The process-wide client for the configured API."""
    settings = get_settings()
    return ApiClient(settings.api_base, timeout_s=settings.api_timeout_s)


def derive_job(api: ApiClient, job_id: str, updates: dict[str, Any]) -> str:
    """The id of `job_id`'s spec with `updates` merged into its params: the same id when they
    already hold, else the id the API gives the derived spec (queued, or cached from before)."""
    record = api.job(job_id)
    params = dict(record.get("params") or {})
    if all(params.get(key) == value for key, value in updates.items()):
        return job_id
    derived = api.submit(
        str(record["kind"]), str(record["model"]), dict(record["inputs"]), {**params, **updates}
    )
    return str(derived["id"])


def upload_bytes(contents: str) -> bytes:
    """The file bytes of a dcc.Upload `contents` value (`data:<mime>;base64,<data>`)."""
    header, sep, data = contents.partition(",")
    if not sep or ";base64" not in header:
        raise ApiError("The upload did not arrive as a file: try again.")
    try:
        return base64.b64decode(data, validate=False)
    except (ValueError, binascii.Error) as exc:
        raise ApiError("The upload is damaged (bad base64): try again.") from exc
