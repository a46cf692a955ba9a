"""`vitscope bench head-clicks`: what it refuses, and how it reports (the clicks themselves are driven by
the browser tests, which use its `pick` and `wait_selection`)."""

import pytest

from vitscope.bench.head_clicks import _stats
from vitscope.cli import main


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--images", "0"], "--images >= 1"),
        (["--heads", "0"], "--heads >= 1"),
        (["--chromium", "/no/such/chromium"], "no Chromium at /no/such/chromium"),
    ],
)
def test_bad_arguments_are_one_readable_line_and_a_failure(capsys, args, said):
    assert main(["bench", "head-clicks", *args]) != 0
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1


def test_the_report_gives_the_median_the_worst_and_every_sample():
    assert _stats([0.5, 0.2, 0.9]) == {"median": 0.5, "max": 0.9, "samples": [0.5, 0.2, 0.9]}
