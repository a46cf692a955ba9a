"""The Redis store shared by the API and the worker: job records, uploads and result tensors.

Torch-free on purpose: the API imports it. Three kinds of keys, with two lifetimes:

- `vitscope:job:<id>`: a hash per job (its normalized spec, status, progress, result manifest).
  No TTL: a shared link must work next month.
- `vitscope:blob:<sha256>`: an uploaded image or zip (`data` + `meta`). No TTL: a job's inputs
  must outlive its results, so they can be recomputed.
- `vitscope:tensor:<sha256>`: one result array as .npy bytes (never pickle), or the summary as
  JSON, named by the hash of its bytes. These carry a TTL refreshed on every read, and Redis
  runs with `maxmemory-policy volatile-lru`, so under memory pressure only results are
  evicted. A job whose results were evicted is put back on the queue from its stored spec.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
from redis import Redis
from redis.exceptions import RedisError

PREFIX = "vitscope"
SUMMARY = "summary"
JSON_DTYPE = "json"

# Create the record, or reset it when the earlier attempt failed or went stale. Returns 1 when
# the caller must enqueue the job. One script, so two identical requests enqueue it once.
_SUBMIT = """
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'failed' then
  local updated = tonumber(redis.call('HGET', KEYS[1], 'updated') or '0')
  if status == 'done' or updated >= tonumber(ARGV[4]) then return 0 end
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'spec', ARGV[2], 'status', 'queued', 'progress', '0',
  'message', 'waiting for a worker', 'error', '', 'attempts', '0', 'updated', ARGV[3], 'worker', '')
redis.call('HSETNX', KEYS[1], 'created', ARGV[3])
redis.call('HSETNX', KEYS[1], 'runs', '0')
redis.call('HSETNX', KEYS[1], 'results', '{}')
return 1
"""

# A done job whose results were evicted goes back to queued, once however many readers notice.
_REQUEUE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'done' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'progress', '0', 'message', ARGV[2],
  'attempts', '0', 'updated', ARGV[1])
return 1
"""


def job_key(job_id: str) -> str:
    """Redis key of a job record."""
    return f"{PREFIX}:job:{job_id}"


def blob_key(blob_id: str) -> str:
    """Redis key of an uploaded file."""
    return f"{PREFIX}:blob:{blob_id}"


def tensor_key(digest: str) -> str:
    """Redis key of a result array or summary, by the sha256 of its bytes."""
    return f"{PREFIX}:tensor:{digest}"


@dataclass(frozen=True)
class ResultRef:
    """Where one named result lives: its tensor key, shape (None for the summary) and dtype."""

    key: str
    shape: tuple[int, ...] | None
    dtype: str


@dataclass
class JobRecord:
    """A job as stored: the normalized spec (`kind`, `model`, `inputs`, `params`) and its state.

    `created`/`updated` are Unix times; `runs` counts completed computations; `attempts` counts
    starts of the current computation (a worker that died mid-job leaves one behind).
    """

    id: str
    spec: dict[str, Any]
    status: str
    progress: float = 0.0
    message: str = ""
    error: str | None = None
    results: dict[str, ResultRef] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0
    runs: int = 0
    attempts: int = 0
    worker: str | None = None

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes]) -> JobRecord:
        """Decode a record from its Redis hash."""
        text = {k.decode(): v.decode() for k, v in raw.items()}
        results = {
            name: ResultRef(
                ref["key"], tuple(ref["shape"]) if ref["shape"] is not None else None, ref["dtype"]
            )
            for name, ref in json.loads(text.get("results") or "{}").items()
        }
        return cls(
            id=text["id"],
            spec=json.loads(text["spec"]),
            status=text["status"],
            progress=float(text.get("progress") or 0),
            message=text.get("message", ""),
            error=text.get("error") or None,
            results=results,
            created=float(text.get("created") or 0),
            updated=float(text.get("updated") or 0),
            runs=int(text.get("runs") or 0),
            attempts=int(text.get("attempts") or 0),
            worker=text.get("worker") or None,
        )


def encode_array(array: np.ndarray) -> bytes:
    """Return the .npy bytes of `array` (refuses object arrays: no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def decode_array(data: bytes) -> np.ndarray:
    """Return the array stored as .npy bytes (refuses pickled payloads)."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def to_jsonable(value: Any) -> Any:
    """Return `value` with numpy scalars/arrays as Python values and NaN/inf as None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Store:
    """Job records, uploads and result tensors in one Redis database.

    `redis` must be a client with `decode_responses=False` (uploads and arrays are bytes).
    """

    def __init__(self, redis: Redis, tensor_ttl_s: int) -> None:
        self.redis = redis
        self.tensor_ttl_s = tensor_ttl_s
        self._submit = redis.register_script(_SUBMIT)
        self._requeue = redis.register_script(_REQUEUE)

    @classmethod
    def from_url(cls, url: str, tensor_ttl_s: int) -> Store:
        """A store on the Redis at `url`."""
        return cls(Redis.from_url(url, decode_responses=False, health_check_interval=30), tensor_ttl_s)

    def ping(self) -> bool:
        """Return whether Redis answers."""
        try:
            return bool(self.redis.ping())
        except (RedisError, OSError):
            return False

    # uploads ---------------------------------------------------------------------------------

    def put_blob(self, data: bytes, meta: Mapping[str, Any]) -> str:
        """Store an upload durably; return its id, the sha256 of its bytes."""
        blob_id = hashlib.sha256(data).hexdigest()
        self.redis.hset(blob_key(blob_id), mapping={"data": data, "meta": json.dumps(dict(meta))})
        return blob_id

    def blob(self, blob_id: str) -> bytes | None:
        """Return an upload's bytes, or None if there is none with that id."""
        data = cast(bytes | None, self.redis.hget(blob_key(blob_id), "data"))
        return data

    def blob_metas(self, blob_ids: Iterable[str]) -> list[dict[str, Any] | None]:
        """Return each upload's metadata (`kind` image|archive, ...), None where it does not exist."""
        pipe = self.redis.pipeline(transaction=False)
        for blob_id in blob_ids:
            pipe.hget(blob_key(blob_id), "meta")
        return [json.loads(raw) if raw is not None else None for raw in pipe.execute()]

    # job records -----------------------------------------------------------------------------

    def job(self, job_id: str) -> JobRecord | None:
        """Return the job record, or None if no job has that id."""
        raw = cast(dict[bytes, bytes], self.redis.hgetall(job_key(job_id)))
        return JobRecord.from_hash(raw) if raw else None

    def submit(self, job_id: str, spec: Mapping[str, Any], stale_after_s: float) -> bool:
        """Create the record of a new job, or reset a failed or stale one; return whether to enqueue it.

        A queued or running record not updated for `stale_after_s` seconds counts as lost.
        """
        now = time.time()
        canonical = json.dumps(dict(spec), sort_keys=True, separators=(",", ":"))
        return bool(self._submit(keys=[job_key(job_id)], args=[job_id, canonical, now, now - stale_after_s]))

    def requeue(self, job_id: str, message: str) -> bool:
        """Put a done job back to queued (its results are gone); return whether this call did it."""
        return bool(self._requeue(keys=[job_key(job_id)], args=[time.time(), message]))

    def start(self, job_id: str, worker: str) -> int:
        """Mark the job running on `worker`; return how many times this computation has started."""
        pipe = self.redis.pipeline()
        pipe.hincrby(job_key(job_id), "attempts", 1)
        pipe.hset(job_key(job_id), mapping=_state("running", 0.0, "starting", worker=worker, error=""))
        return int(pipe.execute()[0])

    def set_progress(self, job_id: str, fraction: float, message: str) -> None:
        """Record the progress (0..1) and a short message of a running job."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        self.redis.hset(job_key(job_id), mapping=_state("running", fraction, message))

    def finish(self, job_id: str, results: Mapping[str, ResultRef]) -> None:
        """Mark the job done with its result manifest."""
        manifest = json.dumps({name: asdict(ref) for name, ref in results.items()})
        pipe = self.redis.pipeline()
        pipe.hset(job_key(job_id), mapping={**_state("done", 1.0, "done"), "results": manifest})
        pipe.hincrby(job_key(job_id), "runs", 1)
        pipe.execute()

    def fail(self, job_id: str, error: str) -> None:
        """Mark the job failed with a message a person can act on."""
        self.redis.hset(job_key(job_id), mapping=_state("failed", 0.0, "failed", error=error))

    # result tensors --------------------------------------------------------------------------

    def put_results(
        self, arrays: Mapping[str, np.ndarray], summary: Mapping[str, Any]
    ) -> dict[str, ResultRef]:
        """Store arrays (.npy) and the summary (JSON) under content-hash keys with a TTL; return the manifest."""
        pipe = self.redis.pipeline(transaction=False)
        refs: dict[str, ResultRef] = {}
        for name, array in arrays.items():
            array = np.asarray(array)
            refs[name] = self._put(
                pipe, encode_array(array), tuple(int(n) for n in array.shape), str(array.dtype)
            )
        text = json.dumps(to_jsonable(summary), sort_keys=True, allow_nan=False)
        refs[SUMMARY] = self._put(pipe, text.encode(), None, JSON_DTYPE)
        pipe.execute()
        return refs

    def _put(self, pipe: Any, data: bytes, shape: tuple[int, ...] | None, dtype: str) -> ResultRef:
        key = tensor_key(hashlib.sha256(data).hexdigest())
        pipe.set(key, data, ex=self.tensor_ttl_s)
        return ResultRef(key, shape, dtype)

    def result_bytes(self, ref: ResultRef) -> bytes | None:
        """Return a result's stored bytes and refresh its TTL; None if it was evicted."""
        return cast(bytes | None, self.redis.getex(ref.key, ex=self.tensor_ttl_s))

    def touch(self, ref: ResultRef) -> bool:
        """Refresh a result's TTL; return whether it still exists."""
        return bool(self.redis.expire(ref.key, self.tensor_ttl_s))

    def results_present(self, results: Mapping[str, ResultRef]) -> bool:
        """Return whether every result of a manifest is still stored (none evicted)."""
        keys = {ref.key for ref in results.values()}
        return bool(keys) and int(self.redis.exists(*keys)) == len(keys)


def _state(status: str, progress: float, message: str, **extra: str) -> dict[Any, Any]:
    # dict[Any, Any]: redis-py types hash mappings with an invariant union key type
    return {
        "status": status,
        "progress": repr(progress),
        "message": message,
        "updated": repr(time.time()),
        **extra,
    }
