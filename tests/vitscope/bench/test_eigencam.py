"""The Eigen-CAM benchmark: every side timed and the reference compared in one run."""

import argparse
import json

import pytest

from vitscope.bench.eigencam import run


@pytest.mark.parametrize("inputs", ["noise", "synthscenes"])
def test_bench_reports_every_side_and_an_agreement_near_one(capsys, inputs):
    args = argparse.Namespace(
        model="random:vit-micro",
        images=4,
        batch_size=2,
        device="cpu",
        dtype="float32",
        layer=-1,
        reference_images=2,
        repeats=1,
        inputs=inputs,
    )
    assert run(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    sides = {line["what"]: line for line in lines}
    assert set(sides) == {
        "plain_forward",
        "vitscope_all_layers",
        "vitscope_one_layer",
        "reference_one_layer",
        "summary",
    }
    summary = sides["summary"]
    assert summary["corr_min"] > 0.999 and summary["corr_images"] == 2
    assert {line["inputs"] for line in lines} == {inputs}
    assert (
        summary["vs_forward"]
        == sides["vitscope_all_layers"]["images_per_s"] / sides["plain_forward"]["images_per_s"]
    )
