"""The heap benchmark runs each side in a fresh process and only the kept side keeps freed memory."""

import argparse
import json

import pytest

from vitscope.bench.heap import run
from vitscope.vit.heap import _glibc


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only")
def test_each_side_runs_in_its_own_process_and_the_summary_compares_them(capsys):
    args = argparse.Namespace(model="random:vit-micro", images=2, batch_size=2, ablation_images=2, rounds=1)
    assert run(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    default, kept, summary = lines
    assert (default["side"], default["applied"]) == ("default", False)
    assert (kept["side"], kept["applied"]) == ("kept", True)
    assert summary["bench"] == "heap" and summary["forward_default_s"] == default["forward_s"]
    expected = default["head_importance_s"] / kept["head_importance_s"]
    assert summary["head_importance_speedup"] == pytest.approx(expected)
    assert summary["peak_rss_kept_mb"] == kept["peak_rss_mb"] > 0
