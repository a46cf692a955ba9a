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

Small keys keep queued and running jobs honest: `vitscope:beat:<id>`, the heartbeat a worker
refreshes while it computes the job (a short TTL: it vanishes with the worker or the broker); the
set `vitscope:running` of the jobs marked running, which a worker's reaper walks to put every job
whose heartbeat is gone back on the queue (`requeue_lost`); and the sorted set `vitscope:queued`
of the jobs marked queued (by when), so the reaper can send again a queued job whose message was
lost (an API that died between writing the record and sending it). A job is cancelled by setting
its status to `cancelled`; its worker reads the status at every batch and stops.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar, cast

import numpy as np
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError, WatchError

T = TypeVar("T")

PREFIX = "vitscope"
SUMMARY = "summary"
JSON_DTYPE = "json"
RUNNING = f"{PREFIX}:running"
QUEUED = f"{PREFIX}:queued"
BEAT_TTL_S = 30
"""A running job whose heartbeat is older than this counts as lost (its worker refreshes it every 10 s)."""

# Create the record, or reset it when the earlier attempt failed, was cancelled or went stale (a
# queued/running record silent for ARGV[4], or a running one whose heartbeat KEYS[2] is gone and
# that is silent since ARGV[5]). Returns 1 when the caller must enqueue the job. One script, so two
# identical requests enqueue it once.
_SUBMIT = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' then return 0 end
if status == 'queued' or status == 'running' then
  local updated = tonumber(redis.call('HGET', KEYS[1], 'updated') or '0')
  local lost = status == 'running' and redis.call('EXISTS', KEYS[2]) == 0
    and updated < tonumber(ARGV[5])
  if updated >= tonumber(ARGV[4]) and not lost then return 0 end
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'spec', ARGV[2], 'status', 'queued', 'progress', '0',
  'message', 'waiting for a worker', 'error', '', 'attempts', '0', 'updated', ARGV[3], 'worker', '')
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
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
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
return 1
"""

# A running job whose heartbeat KEYS[2] is gone and that is silent since ARGV[2] goes back to
# queued, once however many reapers notice; a record no longer running leaves the set KEYS[3].
_REQUEUE_LOST = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then redis.call('SREM', KEYS[3], ARGV[1]) return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'updated') or '0') >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'progress', '0', 'message', ARGV[4],
  'updated', ARGV[3], 'worker', '')
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
return 1
"""

# Cancel a queued or running job (its worker stops at its next batch); return the status it had.
_CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' or status == 'running' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'message', ARGV[2], 'updated', ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[3], ARGV[3])
end
return status or ''
"""

# Delete a settled job's record and its result tensors; return the status it had ('' if none).
_DELETE = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'done' and status ~= 'failed' and status ~= 'cancelled' then return status or '' end
for _, ref in pairs(cjson.decode(redis.call('HGET', KEYS[1], 'results') or '{}')) do
  redis.call('DEL', ref['key'])
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return status
"""


def job_key(job_id: str) -> str:
    """Redis key of a job record."""
    return f"{PREFIX}:job:{job_id}"


def beat_key(job_id: str) -> str:
    """Redis key of a running job's heartbeat."""
    return f"{PREFIX}:beat:{job_id}"


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
        self._requeue_lost = redis.register_script(_REQUEUE_LOST)
        self._cancel = redis.register_script(_CANCEL)
        self._delete = redis.register_script(_DELETE)

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

    def submit(
        self, job_id: str, spec: Mapping[str, Any], stale_after_s: float, lost_after_s: float = BEAT_TTL_S
    ) -> bool:
        """Create the record of a new job, or reset a failed, cancelled or stale one; return whether to enqueue it.

        A queued or running record not updated for `stale_after_s` seconds counts as lost, and so
        does a running one without a heartbeat that is silent for `lost_after_s`.
        """
        now = time.time()
        canonical = json.dumps(dict(spec), sort_keys=True, separators=(",", ":"))
        keys = [job_key(job_id), beat_key(job_id), RUNNING, QUEUED]
        args: list[str | float] = [job_id, canonical, now, now - stale_after_s, now - lost_after_s]
        return bool(self._submit(keys=keys, args=args))

    def requeue(self, job_id: str, message: str) -> bool:
        """Put a done job back to queued (its results are gone); return whether this call did it."""
        return bool(self._requeue(keys=[job_key(job_id), QUEUED], args=[time.time(), message, job_id]))

    def start(self, job_id: str, worker: str, beat_ttl_s: int = BEAT_TTL_S) -> int:
        """Mark the job running on `worker` with a fresh heartbeat; return how many times this computation has started."""
        pipe = self.redis.pipeline()
        pipe.hincrby(job_key(job_id), "attempts", 1)
        pipe.hset(job_key(job_id), mapping=_state("running", 0.0, "starting", worker=worker, error=""))
        pipe.set(beat_key(job_id), worker, ex=beat_ttl_s)
        pipe.sadd(RUNNING, job_id)
        pipe.zrem(QUEUED, job_id)
        return int(pipe.execute()[0])

    def beat(self, job_id: str, worker: str, ttl_s: int = BEAT_TTL_S) -> None:
        """Refresh the heartbeat of a job `worker` is computing."""
        self.redis.set(beat_key(job_id), worker, ex=ttl_s)

    def status(self, job_id: str) -> str | None:
        """Return the job's status alone (cheap enough to read at every batch), None if there is no job."""
        raw = cast(bytes | None, self.redis.hget(job_key(job_id), "status"))
        return raw.decode() if raw is not None else None

    def set_progress(self, job_id: str, fraction: float, message: str) -> None:
        """Record the progress (0..1) and a short message of a running job (never its status: a
        cancelled job stays cancelled)."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        state = _state("running", fraction, message)
        del state["status"]
        self.redis.hset(job_key(job_id), mapping=state)

    def finish(self, job_id: str, results: Mapping[str, ResultRef]) -> None:
        """Mark the job done with its result manifest."""
        manifest = json.dumps({name: asdict(ref) for name, ref in results.items()})
        pipe = self.redis.pipeline()
        pipe.hset(job_key(job_id), mapping={**_state("done", 1.0, "done"), "results": manifest})
        pipe.hincrby(job_key(job_id), "runs", 1)
        pipe.delete(beat_key(job_id))
        pipe.srem(RUNNING, job_id)
        pipe.zrem(QUEUED, job_id)
        pipe.execute()

    def fail(self, job_id: str, error: str) -> None:
        """Mark the job failed with a message a person can act on."""
        pipe = self.redis.pipeline()
        pipe.hset(job_key(job_id), mapping=_state("failed", 0.0, "failed", error=error))
        pipe.delete(beat_key(job_id))
        pipe.srem(RUNNING, job_id)
        pipe.zrem(QUEUED, job_id)
        pipe.execute()

    def stopped(self, job_id: str) -> None:
        """Drop the heartbeat of a job its worker stopped computing (cancelled, or taken back)."""
        self.redis.delete(beat_key(job_id))

    def cancel(self, job_id: str, message: str, on: Pipeline | None = None) -> str | None:
        """Cancel a queued or running job; return the status it had (None: no such job).

        A running job's worker sees the status at its next batch and stops. `on`: queue it on that
        transaction instead (`atomically`; then None here, the status in the transaction's results).
        """
        keys = [job_key(job_id), RUNNING, QUEUED]
        return _text(self._cancel(keys=keys, args=[time.time(), message, job_id], client=on or self.redis))

    def delete_job(self, job_id: str, on: Pipeline | None = None) -> str | None:
        """Delete a done, failed or cancelled job's record and result tensors; return the status it
        had (a queued or running job is left alone; None: no such job). `on`: as for `cancel`."""
        keys = [job_key(job_id), beat_key(job_id), QUEUED]
        return _text(self._delete(keys=keys, args=[job_id], client=on or self.redis))

    def atomically(self, key: str, plan: Callable[[Pipeline], T], attempts: int = 8) -> T:
        """Run `plan(pipe)` as one transaction with what it decides on: the plan reads what it needs through
        this store (and may raise to refuse), then calls `pipe.multi()` and queues its writes on `pipe`.
        The writes run only if `key` was not written meanwhile; else the plan runs again on what is there
        now. Returns what the plan returned; `StoreBusy` when `key` changed under each of `attempts` tries.
        """
        for _ in range(attempts):
            with self.redis.pipeline() as pipe:
                pipe.watch(key)
                decided = plan(pipe)
                try:
                    pipe.execute()
                except WatchError:
                    continue
                return decided
        raise StoreBusy(f"{key} kept changing")

    def running_jobs(self) -> list[str]:
        """Return the ids of the jobs marked running (some may be lost: see `requeue_lost`)."""
        return sorted(m.decode() for m in cast(set[bytes], self.redis.smembers(RUNNING)))

    def requeue_lost(self, job_id: str, message: str, lost_after_s: float = BEAT_TTL_S) -> bool:
        """Put a running job whose heartbeat is gone back to queued; return whether this call did it."""
        now = time.time()
        keys = [job_key(job_id), beat_key(job_id), RUNNING, QUEUED]
        return bool(self._requeue_lost(keys=keys, args=[job_id, now - lost_after_s, now, message]))

    def queued_jobs(self, waiting_s: float) -> list[str]:
        """Return the ids of the jobs marked queued at least `waiting_s` ago (oldest first)."""
        raw = self.redis.zrangebyscore(QUEUED, "-inf", time.time() - waiting_s)
        return [m.decode() for m in cast(list[bytes], raw)]

    def still_queued(self, job_id: str) -> bool:
        """Whether the job is still queued, restarting its wait if so (forgetting it if not)."""
        if self.status(job_id) == "queued":
            self.redis.zadd(QUEUED, {job_id: time.time()}, xx=True)
            return True
        self.redis.zrem(QUEUED, job_id)
        return False

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


def _text(reply: Any) -> str | None:
    # a script's string reply; '' stands for "no such record"; a queued call (a Pipeline) returns None
    if isinstance(reply, Pipeline):
        return None
    text = reply.decode() if isinstance(reply, bytes) else reply
    return text or None


class StoreBusy(Exception):
    """`Store.atomically` found its key changed under every try."""


def _state(status: str, progress: float, message: str, **extra: str) -> dict[Any, Any]:
    # dict[Any, Any]: redis-py types hash mappings with an invariant union key type
    return {
        "status": status,
        "progress": repr(progress),
        "message": message,
        "updated": repr(time.time()),
        **extra,
    }
