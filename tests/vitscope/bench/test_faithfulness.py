"""The faithfulness benchmark: the scores an Eigen-CAM job adds, timed beside the plain forward."""

import argparse
import json

from vitscope.bench.faithfulness import run


def test_bench_times_the_scores_of_every_method_and_counts_their_forwards(capsys):
    args = argparse.Namespace(
        model="random:vit-micro", images=4, batch_size=2, steps=3, device="cpu", dtype="float32", repeats=1
    )
    assert run(args) == 0
    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert line["bench"] == "faithfulness" and line["images"] == 4 and line["steps"] == 3
    methods = line["methods"]
    assert methods[-2:] == ["random", "centre"] and "rollout" in methods and "gradcam" in methods
    # the two shared ends, then every method deleted and inserted at each of the two inner steps
    assert line["perturbed_forwards"] == 4 * (2 + 2 * len(methods) * 2)
    assert line["faithfulness_s"] > 0 and line["perturbed_img_per_s"] > 0
    assert set(line["mean_deletion_auc"]) == set(line["mean_insertion_auc"]) == set(methods)
    assert all(0 <= v <= 1 for v in line["mean_insertion_auc"].values())
