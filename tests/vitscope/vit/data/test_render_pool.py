"""SynthScenes' helper processes: the same bytes as rendering in the caller, failures that fall back,
cancelled pieces, closing, forking, and starting them early for a job's inputs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vitscope.contracts.jobs import Inputs
from vitscope.vit.data import render_pool
from vitscope.vit.data.inputs import start_rendering
from vitscope.vit.data.render_pool import RenderPool
from vitscope.vit.data.synthscenes import SynthScenes, render_range


@pytest.fixture
def pool():
    started = RenderPool(2)
    yield started
    started.close()


def empty(count: int, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch to render into, filled with a value no rendering leaves everywhere."""
    return (
        np.full((count, *hw, 3), 7, np.uint8),
        np.full(count, -5, np.int64),
        np.full((count, 4), np.nan, np.float32),
    )


def assert_same(got, want) -> None:
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_pieces_rendered_by_helpers_have_the_callers_bytes(pool):
    batch = empty(13, (40, 56))
    pieces = [(0, 4), (4, 4), (8, 4), (12, 1)]  # more pieces than helpers, all in flight at once
    futures = [pool.submit(batch, at, 5, 100 + at, count) for at, count in pieces]
    for future in futures:
        future.result(timeout=60)
    assert_same(batch, render_range(5, 100, 13, (40, 56)))


def test_a_helper_that_died_is_replaced_by_rendering_here_with_a_warning(pool, caplog):
    for helper in pool._helpers:
        helper.process.kill()
        helper.process.wait()
    batch = empty(6, (32, 32))
    with caplog.at_level(logging.WARNING, logger="vitscope.vit.data.render_pool"):
        futures = [pool.submit(batch, 0, 1, 0, 3), pool.submit(batch, 3, 1, 3, 3)]
        for future in futures:
            future.result(timeout=60)
    assert_same(batch, render_range(1, 0, 6, (32, 32)))
    assert "render helper failed" in caplog.text and "rendering in this process" in caplog.text


def test_a_piece_a_helper_refuses_raises_the_callers_error_and_the_helper_serves_on(pool):
    batch = empty(2, (32, 32))
    with pytest.raises(ValueError):  # a negative seed: numpy refuses it in the helper and here alike
        pool.submit(batch, 0, -1, 0, 2).result(timeout=60)
    pool.submit(batch, 0, 2, 0, 2).result(timeout=60)
    assert_same(batch, render_range(2, 0, 2, (32, 32)))
    assert all(helper.process.poll() is None for helper in pool._helpers)


def test_a_cancelled_piece_is_not_rendered():
    alone = RenderPool(1)
    try:
        busy = alone.submit(empty(400, (96, 96)), 0, 0, 0, 400)  # keeps the one helper busy
        batch = empty(2, (32, 32))
        waiting = alone.submit(batch, 0, 0, 0, 2)
        assert waiting.cancel()
        busy.result(timeout=120)
    finally:
        alone.close()
    assert_same(batch, empty(2, (32, 32)))


def test_closing_a_pool_ends_its_helpers():
    closing = RenderPool(2)
    processes = [helper.process for helper in closing._helpers]
    closing.submit(empty(1, (32, 32)), 0, 0, 0, 1).result(timeout=60)
    closing.close()
    assert [p.returncode for p in processes] == [0, 0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_does_not_use_its_parents_helpers(monkeypatch):
    monkeypatch.setattr(render_pool, "_POOL", object())
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports what it sees and leaves at once
        os.write(write, b"forgotten" if render_pool._POOL is None else b"kept")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"forgotten"
    assert render_pool._POOL is not None  # the parent's own is untouched


@pytest.fixture
def no_shared_pool():
    render_pool._close_shared()
    yield
    render_pool._close_shared()


def test_a_large_synthscenes_input_starts_the_helpers_early(monkeypatch, no_shared_pool):
    monkeypatch.setattr("vitscope.vit.data.synthscenes.render_workers", lambda n: 2 if n >= 128 else 1)
    start_rendering(Inputs(dataset="synthscenes:64"))
    start_rendering(Inputs(images=["a" * 64]))
    assert render_pool._POOL is None  # too few images to be worth it; uploads are decoded, not rendered
    start_rendering(Inputs(dataset="synthscenes:500:seed=2"))
    started = render_pool._POOL
    assert started is not None and started.size == 2
    assert all(t.is_alive() for t in started._threads)
    assert all(h.process.poll() is None for h in started._helpers)
    start_rendering(Inputs(dataset="synthscenes:900"))
    assert render_pool._POOL is started  # one pool per process, kept for the next job


def test_helpers_that_cannot_start_leave_rendering_in_the_caller(monkeypatch, no_shared_pool, caplog):
    started = []
    popen = render_pool.subprocess.Popen

    def second_fails(*args, **kwargs):
        if started:
            raise OSError("Resource temporarily unavailable")
        started.append(popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(render_pool.subprocess, "Popen", second_fails)
    with caplog.at_level(logging.WARNING, logger="vitscope.vit.data.render_pool"):
        assert render_pool.shared_pool(2) is None
        batches = list(SynthScenes(6, seed=1, image_size=32).batches(3, workers=2))
    assert started[0].returncode == 0  # the one that did start was stopped, not left behind
    assert "helpers not started (Resource temporarily unavailable)" in caplog.text
    assert_same(
        [np.concatenate(parts) for parts in zip(*batches, strict=True)], render_range(1, 0, 6, (32, 32))
    )


def test_helpers_leave_when_their_parent_is_killed():
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from vitscope.vit.data.render_pool import RenderPool; "
            "pool = RenderPool(1); print(pool._helpers[0].process.pid, flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    helper = int(parent.stdout.readline())
    parent.kill()  # no atexit, no close: only the pipe to the helper ends
    parent.wait()
    deadline = time.monotonic() + 30
    while running(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(helper)


def running(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, which only waits for whoever reaps orphans here, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
