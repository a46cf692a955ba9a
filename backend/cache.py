"""Rendered results kept in the API process, so a popular result costs no Redis read and no encoding.

Safe because a result never changes under its name: a job id is a keyed hash of its spec, and
each cached body carries the content hash of the tensor it was rendered from (its ETag).
Bounded by the total size of the bodies, least recently used first out.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from vitscope.contracts.store import ResultRef


@dataclass
class Rendered:
    """One result as served: body bytes, media type, ETag, and the tensor it came from."""

    body: bytes
    media_type: str
    etag: str
    ref: ResultRef
    touched: float = field(default_factory=time.monotonic)


class ResultCache:
    """An LRU of `Rendered` results keyed by (job id, name, format, *slice index), at most `max_bytes` of bodies."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, ...], Rendered] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> Rendered | None:
        """Return the cached result, or None."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def drop_job(self, job_id: str) -> None:
        """Forget every cached result of job `job_id` (it was deleted)."""
        with self._lock:
            for key in [key for key in self._items if key[0] == job_id]:
                self._bytes -= len(self._items.pop(key).body)

    def put(self, key: tuple[str, ...], item: Rendered) -> None:
        """Cache `item` unless it alone exceeds the budget; drop the least recently used beyond it."""
        if len(item.body) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += len(item.body) - (len(old.body) if old else 0)
            self._items[key] = item
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.body)
