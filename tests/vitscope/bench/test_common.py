"""The benchmarks' shared timer."""

import time

from vitscope.bench.common import once_timed


def test_once_timed_returns_the_result_and_the_seconds_of_one_call() -> None:
    calls = []

    def work() -> str:
        calls.append(1)
        time.sleep(0.05)
        return "done"

    out, seconds = once_timed(work, "cpu")
    assert out == "done" and calls == [1]
    assert 0.05 <= seconds < 5
