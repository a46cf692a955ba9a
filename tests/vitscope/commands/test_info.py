"""`vitscope info` and `vitscope eval`."""

import json

from vitscope.cli import main


def test_info_json_has_the_layout_and_labels(capsys):
    assert main(["info", "random:deit-distilled-micro", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layers"] == 2 and info["heads"] == 4
    assert info["prefix_tokens"] == ["cls", "distillation"] and info["grid"] == [4, 4]
    assert info["image_size"] == [32, 32] and len(info["labels"]) == 14


def test_info_of_the_offline_real_backbone(capsys):
    assert main(["info", "imgfocus:dinov2-s", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["family"], info["layers"], info["heads"]) == ("dinov2", 12, 6)
    assert info["prefix_tokens"] == ["cls"] and info["grid"] == [16, 16] and info["image_size"] == [224, 224]
    assert info["classifier"] is False and info["labels"] == [] and info["resize_shortest_edge"] == 256


def test_eval_reports_top1_count_and_per_class_accuracy(capsys):
    assert (
        main(
            [
                "eval",
                "random:vit-micro",
                "--dataset",
                "synthscenes:30:seed=2",
                "--json",
                "--device",
                "cpu",
                "--batch-size",
                "8",
            ]
        )
        == 0
    )
    scores = json.loads(capsys.readouterr().out)
    assert scores["n"] == 30 and 0 <= scores["top1"] <= 1
    seen = [acc for acc in scores["per_class"].values() if acc is not None]
    assert seen and all(0 <= acc <= 1 for acc in seen)


def test_eval_refuses_an_unknown_dataset_with_exit_2(capsys):
    assert main(["eval", "random:vit-micro", "--dataset", "imagenet:10"]) == 2
    assert "imagenet:10" in capsys.readouterr().err
