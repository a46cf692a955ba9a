"""The reaper: every worker re-queues the running jobs whose heartbeat is gone, and sends again
the queued jobs whose message is nowhere in the broker.

A job's pool process refreshes its heartbeat while it computes (`worker.guard`). When that
process, its whole worker or the broker vanishes, the heartbeat's TTL runs out within
`BEAT_TTL_S`, and the next reaper pass (every `reap_interval_s`, in every worker's parent
process) puts the job back to queued and sends it again: a lost job runs again within a minute
instead of waiting for the broker's visibility timeout (hours). `Store.requeue_lost` is one
atomic script, so with many workers a job is re-queued once. The broker may still redeliver the
lost job's original message after its visibility timeout; that delivery finds the job done
(or running elsewhere, with a fresh heartbeat) and is harmless.

A queued job can lose its message too: an API that dies between writing the record and sending
the message, or a worker that dies (or drops a dead broker's connection) after taking the message
but before marking the job running, which leaves the message among the broker's unacknowledged
ones until the visibility timeout. A job queued for `LOST_MESSAGE_S` whose id is in no waiting
message, nor in a message delivered within that time, is sent again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from vitscope.contracts.store import BEAT_TTL_S, Store

log = logging.getLogger(__name__)

REQUEUED = "re-queued: its worker or the broker went away while it ran"
LOST_MESSAGE_S = 60.0
"""A job queued this long is checked for a message in the broker."""
UNACKED = "unacked"
"""The hash where kombu's Redis transport keeps delivered, unacknowledged messages (by delivery tag)."""
UNACKED_INDEX = "unacked_index"
"""The sorted set of those delivery tags, scored by the time of delivery."""


def reap(store: Store, send: Callable[[str], None], lost_after_s: float = BEAT_TTL_S) -> list[str]:
    """Re-queue every running job whose heartbeat is gone (and that is silent for `lost_after_s`),
    sending it again; return their ids."""
    requeued = []
    for job_id in store.running_jobs():
        if store.requeue_lost(job_id, REQUEUED, lost_after_s):
            send(job_id)
            requeued.append(job_id)
            log.warning("job %s lost its worker: re-queued", job_id)
    return requeued


def resend_lost_messages(
    store: Store, queues: Sequence[str], send: Callable[[str], None], waiting_s: float = LOST_MESSAGE_S
) -> list[str]:
    """Send again every job queued for `waiting_s` whose id is in no message of `queues` nor of
    the unacknowledged ones; return their ids."""
    waiting = store.queued_jobs(waiting_s)
    if not waiting:
        return []
    messages = broker_messages(store, queues, time.time() - waiting_s)
    resent = []
    for job_id in waiting:
        if store.still_queued(job_id) and not any(job_id.encode() in m for m in messages):
            send(job_id)
            resent.append(job_id)
            log.warning("job %s was queued without a message: sent again", job_id)
    return resent


def broker_messages(store: Store, queues: Sequence[str], delivered_since: float) -> list[bytes]:
    """Return the raw messages waiting in `queues`, and those delivered since `delivered_since` (a
    Unix time) and not acknowledged yet: an older delivery of a job still queued went nowhere."""
    pipe = store.redis.pipeline(transaction=False)
    for queue in queues:
        pipe.lrange(queue, 0, -1)
    pipe.zrangebyscore(UNACKED_INDEX, delivered_since, "+inf")
    *waiting, recent = pipe.execute()
    delivered = store.redis.hmget(UNACKED, recent) if recent else []
    return [m for batch in waiting for m in batch] + [m for m in delivered if m is not None]


def start_reaper(
    store: Store,
    send: Callable[[str], None],
    interval_s: float,
    queues: Sequence[str],
    lost_after_s: float = BEAT_TTL_S,
    waiting_s: float = LOST_MESSAGE_S,
) -> threading.Event:
    """Run `reap` and `resend_lost_messages` every `interval_s` seconds in a daemon thread; set the
    returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                reap(store, send, lost_after_s)
                resend_lost_messages(store, queues, send, waiting_s)
            except (RedisError, OSError):  # the broker is away; the next pass tries again
                log.warning("reaper pass failed: Redis unreachable")
            except Exception:  # never let the thread die: it is the only one
                log.exception("reaper pass failed")

    threading.Thread(target=loop, name="vitscope-reaper", daemon=True).start()
    return stop
