"""The fault drill's bookkeeping (the drill itself runs `vitscope up` and is not a timed test)."""

import time

from vitscope.bench.faults import _follow


def test_the_drill_notes_when_a_job_running_at_a_kill_was_requeued_or_finished():
    started = time.monotonic() - 40
    kill = {"at_s": 10.0, "running": {"a": {"attempts": 1}, "b": {"attempts": 1}, "c": {"attempts": 1}}}
    records = {
        "a": {"status": "queued", "attempts": 1},
        "b": {"status": "done", "attempts": 1},
        "c": {"status": "running", "attempts": 1},
    }
    _follow(kill, records, started)
    assert (
        set(kill["running"]["a"]) == {"attempts", "requeued_s"} and kill["running"]["a"]["requeued_s"] >= 30
    )
    assert "finished_s" in kill["running"]["b"] and kill["running"]["c"] == {"attempts": 1}
    records["c"] = {"status": "running", "attempts": 2}  # started again on another attempt
    _follow(kill, records, started)
    assert "requeued_s" in kill["running"]["c"]
