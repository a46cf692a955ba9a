"""Helper processes that render SynthScenes images while the caller imports, computes or waits.

Rendering an image is many numpy operations on small windows, so threads share one GIL: on a
16-core H200 host 1,000 224-px images took 3.5 s on one thread, 1.9 s on 2 or 4 and 4.0 s on 8.
Processes do not share it. A helper is `python -m vitscope.vit.data.render_pool`: it warms
SynthScenes' caches, then answers each request (one JSON line on its stdin: seed, start, count,
height, width) with a one-line JSON header and the images, labels and boxes as raw bytes on its
stdout, which the parent reads straight into the batch's arrays. Nothing is pickled.

Helpers are started with `subprocess` (a Celery prefork child is a daemon, and a daemon may not
start `multiprocessing` children), serve the process for its whole life (a worker renders its next
job's images with helpers already warm) and leave when their stdin closes: at `close`, at exit, or
when the parent dies. A helper that fails (it died, or it answered an error) is retired and the piece
it had is rendered in the parent with a warning: a pool only ever makes rendering faster.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from vitscope.vit.data.synthscenes import Batch3, render_into, render_range, warm_caches

log = logging.getLogger(__name__)


class HelperFailed(Exception):
    """A helper could not answer (it died, or its pipes broke)."""


@dataclass
class _Piece:
    """Images start..start+count-1 of seed's set, to be written at rows at..at+count-1 of `batch`."""

    batch: Batch3
    at: int
    seed: int
    start: int
    count: int
    future: Future[None] = field(default_factory=Future)

    def rows(self) -> list[np.ndarray]:
        """The slices of the batch's three arrays that this piece fills (contiguous, row-major)."""
        return [array[self.at : self.at + self.count] for array in self.batch]


class _Helper:
    """One helper process and the pipes to it."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[3])  # the helper imports the same vitscope
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vitscope.vit.data.render_pool"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
            start_new_session=True,  # no Ctrl-C or group signal of the terminal's: it leaves when stdin closes
        )

    def render(self, piece: _Piece) -> bool:
        """Have the helper render `piece` into its batch; False when it answered an error (the same error
        is the parent's to raise); `HelperFailed` when it died."""
        assert self.process.stdin is not None and self.process.stdout is not None
        images = piece.batch[0]
        request = {"seed": piece.seed, "start": piece.start, "count": piece.count, "hw": images.shape[1:3]}
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
            if not line:
                raise HelperFailed("it exited")
            header = json.loads(line)
            if "error" in header:
                log.debug("a SynthScenes render helper refused a piece: %s", header["error"])
                return False
            for rows in piece.rows():
                _read_into(self.process.stdout, rows)
        except (OSError, ValueError) as exc:
            raise HelperFailed(str(exc)) from exc
        return True

    def stop(self) -> None:
        """Close its stdin: it leaves."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):  # a helper that died leaves a broken pipe
                self.process.stdin.close()

    def reap(self) -> None:
        """Wait for it to have left (kill it after 5 s)."""
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _read_into(stream: IO[bytes], rows: np.ndarray) -> None:
    """Fill `rows` (C-contiguous) from `stream`; raise `HelperFailed` at an early end."""
    view = rows.data.cast("B")
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:])  # type: ignore[attr-defined]  # a BufferedReader; no GIL held
        if not got:
            raise HelperFailed("it exited mid-answer")
        filled += got


class RenderPool:
    """`processes` helpers, each served by one thread of this process that hands it pieces in turn."""

    def __init__(self, processes: int) -> None:
        self._pieces: queue.SimpleQueue[_Piece | None] = queue.SimpleQueue()
        self._helpers: list[_Helper] = []
        try:
            for _ in range(processes):
                self._helpers.append(_Helper())
        except OSError:  # no more processes, no interpreter: none are left behind
            for helper in self._helpers:
                helper.stop()
                helper.reap()
            raise
        self._threads = [
            threading.Thread(target=self._serve, args=(h,), name=f"render-helper-{i}", daemon=True)
            for i, h in enumerate(self._helpers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def size(self) -> int:
        """How many helpers it was started with."""
        return len(self._helpers)

    def submit(self, batch: Batch3, at: int, seed: int, start: int, count: int) -> Future[None]:
        """Render images start..start+count-1 of seed's labelled set into rows at..at+count-1 of `batch`;
        the future is done when they are there (cancel it to drop a piece no helper has taken yet)."""
        piece = _Piece(batch, at, seed, start, count)
        self._pieces.put(piece)
        return piece.future

    def close(self, wait: bool = True) -> None:
        """Let the helpers finish what they have, then tell them to leave; with `wait`, reap them (at exit
        the process does not wait: a helper leaves by itself once its stdin is closed)."""
        for _ in self._threads:
            self._pieces.put(None)
        for thread in self._threads:
            thread.join()
        for helper in self._helpers:
            helper.stop()
        if wait:
            for helper in self._helpers:
                helper.reap()

    def _serve(self, helper: _Helper) -> None:
        alive = True
        while (piece := self._pieces.get()) is not None:
            if not piece.future.set_running_or_notify_cancel():
                continue
            try:
                done = False
                if alive:
                    try:
                        done = helper.render(piece)
                    except HelperFailed as exc:
                        alive = False
                        log.warning("a SynthScenes render helper failed (%s): rendering in this process", exc)
                if not done:
                    render_here(piece)
            except BaseException as exc:  # the piece's error belongs to whoever waits for it
                piece.future.set_exception(exc)
            else:
                piece.future.set_result(None)


def render_here(piece: _Piece) -> None:
    """Render `piece` in this process (what a helper would have written)."""
    render_into(piece.batch, piece.at, piece.seed, piece.start, piece.count)


_POOL: RenderPool | None = None
_LOCK = threading.Lock()


def shared_pool(processes: int) -> RenderPool | None:
    """This process's pool, started with `processes` helpers on first use and kept until exit; None when
    they cannot be started (rendering stays in the caller)."""
    global _POOL
    with _LOCK:
        if _POOL is None:
            try:
                _POOL = RenderPool(processes)
            except OSError as exc:
                log.warning("SynthScenes render helpers not started (%s): rendering in this process", exc)
                return None
            atexit.register(_close_shared, wait=False)
        return _POOL


def running_pool() -> RenderPool | None:
    """This process's pool if it has started one, else None (nothing is started)."""
    return _POOL


def _close_shared(wait: bool = True) -> None:
    """Close this process's pool, if it has one (`RenderPool.close`)."""
    global _POOL
    with _LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.close(wait)


def _forget_shared() -> None:
    """In a forked child: the pipes are the parent's helpers', not this process's."""
    global _POOL, _LOCK
    _POOL, _LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_shared)


def _serve_requests() -> None:
    """A helper's loop: warm the caches, then answer requests until stdin closes."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr and cannot corrupt an answer
    warm_caches()
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            batch = render_range(request["seed"], request["start"], request["count"], tuple(request["hw"]))
        except Exception as exc:  # answered, not raised: the parent renders the piece and reports it
            answers.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n")
        else:
            answers.write(b"{}\n")
            for array in batch:
                answers.write(np.ascontiguousarray(array).data.cast("B"))
        answers.flush()
    os._exit(0)  # nothing to tear down: the parent may be waiting for this process to leave


if __name__ == "__main__":
    _serve_requests()
