"""A byte quota on what the API stores for good: uploads and job records, apart from the result cache.

Result tensors carry a TTL and are evicted under memory pressure (`volatile-lru`); uploads and
records are not, so without a quota a few large zips fill Redis and evict every result. Each new
upload or record is charged before it is written, to the store-wide total and to its client's
share, by one Lua script, so concurrent writers cannot overshoot; a key that already exists (the
same bytes uploaded again, the same job submitted again) costs nothing. A refusal is a 507 that
names the setting; nothing is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline

from backend.errors import ApiError
from vitscope.contracts.store import PREFIX, Store, blob_key

USED = f"{PREFIX}:quota:used"
"""Bytes charged in all (a string counter)."""
BY_CLIENT = f"{PREFIX}:quota:clients"
"""Bytes charged per client (a hash: client name -> bytes)."""
CHARGES = f"{PREFIX}:quota:charges"
"""What each charged key cost and to whom (a hash: key -> "bytes client"), so a delete gives it back
and only that client may delete it (`backend.access.check_owner`)."""

_KEYS = (USED, BY_CLIENT, CHARGES)
RECORD_OVERHEAD = 512
"""Bytes charged on top of a record's or an upload's payload (its hash fields and Redis overhead)."""

# KEYS: the key to be written, the total, the per-client hash, the charges. ARGV: size, client,
# total cap, client cap (0: none). Returns 0 (exists: free), 1 (charged), -1 (store full), -2 (client full).
_RESERVE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local size = tonumber(ARGV[1])
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
local mine = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
if tonumber(ARGV[3]) > 0 and total + size > tonumber(ARGV[3]) then return -1 end
if tonumber(ARGV[4]) > 0 and mine + size > tonumber(ARGV[4]) then return -2 end
redis.call('INCRBY', KEYS[2], size)
redis.call('HINCRBY', KEYS[3], ARGV[2], size)
redis.call('HSET', KEYS[4], KEYS[1], ARGV[1] .. ' ' .. ARGV[2])
return 1
"""

# Give back what KEYS[1] was charged (KEYS 2-4 as above); returns the bytes given back.
_RELEASE = """
local charge = redis.call('HGET', KEYS[4], KEYS[1])
if not charge then return 0 end
local size, client = string.match(charge, '^(%d+) (.*)$')
redis.call('HDEL', KEYS[4], KEYS[1])
redis.call('DECRBY', KEYS[2], size)
redis.call('HINCRBY', KEYS[3], client, -tonumber(size))
return tonumber(size)
"""


class Quota:
    """Charges and releases bytes of uploads and job records (`store_bytes` and `client_bytes`: 0 is no cap)."""

    def __init__(self, redis: Redis, store_bytes: int, client_bytes: int) -> None:
        self.redis = redis
        self.store_bytes = store_bytes
        self.client_bytes = client_bytes
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)

    def reserve(self, key: str, size: int, client: str) -> bool:
        """Charge `size` bytes to `client` for writing `key`; return whether it was charged.

        Returns False when `key` exists already (nothing to charge); raises `ApiError` 507 when the
        store's or the client's quota would be exceeded.
        """
        answer = int(self._reserve(keys=[key, *_KEYS], args=[size, client, *self._caps()]))
        if answer == -1:
            raise ApiError(
                507,
                f"the store's quota for uploads and job records is used up ({self.store_bytes} bytes, "
                "VITSCOPE_STORE_QUOTA_BYTES): delete uploads or jobs you no longer need, or ask the operator",
            )
        if answer == -2:
            raise ApiError(
                507,
                f"your quota for uploads and job records is used up ({self.client_bytes} bytes, "
                "VITSCOPE_CLIENT_QUOTA_BYTES): delete uploads or jobs you no longer need",
            )
        return answer == 1

    def release(self, key: str, on: Pipeline | None = None) -> int:
        """Give back what writing `key` was charged (a write that failed, a deleted upload or job); return the
        bytes. `on`: queue it on that transaction (`Store.atomically`) instead, returning 0 here."""
        if on is not None:
            self._release(keys=[key, *_KEYS], client=on)
            return 0
        return int(self._release(keys=[key, *_KEYS]))

    def owner(self, key: str) -> str | None:
        """Return the client `key` is charged to (its first writer), or None when it has no charge."""
        charge = cast(bytes | None, self.redis.hget(CHARGES, key))
        return charge.decode().partition(" ")[2] if charge is not None else None

    def put_blob(self, store: Store, data: bytes, meta: Mapping[str, Any], client: str) -> str:
        """Store an upload (`Store.put_blob`) once its bytes are charged to `client`; return its id."""
        key = blob_key(hashlib.sha256(data).hexdigest())
        charged = self.reserve(key, len(data) + len(json.dumps(dict(meta))) + RECORD_OVERHEAD, client)
        try:
            return store.put_blob(data, meta)
        except BaseException:
            if charged:
                self.release(key)
            raise

    def used(self, client: str | None = None) -> int:
        """Bytes charged in all, or to `client`."""
        raw = self.redis.get(USED) if client is None else self.redis.hget(BY_CLIENT, client)
        return int(raw or 0)

    def _caps(self) -> tuple[int, int]:
        return self.store_bytes, self.client_bytes
