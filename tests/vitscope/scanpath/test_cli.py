"""The `train-scanpath` / `eval-scanpath` commands (vitscope/commands/scanpath.py), end to end on
tiny settings."""

import json
from pathlib import Path

import pytest

from vitscope.cli import main

TINY_MODEL = ["--d-model", "16", "--layers", "1", "--heads", "2", "--crop", "30x30"]


def test_train_then_eval_prints_json_per_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ckpt"
    args = ["train-scanpath", "--dataset", "synthsearch:4:seed=3:layout=grid:3x4", "--subjects", "2"]
    assert main([*args, *TINY_MODEL, "--epochs", "1", "--val-samples", "2", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["best_epoch"] == 1 and (out / "model.safetensors").is_file()
    args = ["eval-scanpath", "--dataset", "synthsearch:2:seed=9:layout=grid:3x4", "--checkpoint", str(out)]
    assert main([*args, "--samples", "3", "--subjects", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    methods = {"oat_greedy", "oat_sampled", "random", "nearest", "similarity", "simulator"}
    assert set(report["methods"]) == methods
    for scores in report["methods"].values():
        assert 0.0 <= scores["sequence_score"] <= 1.0
        assert set(scores["multimatch"]) == {"vector", "direction", "length", "position"}
        assert set(scores["behaviour"]) == {
            "target_found", "length", "search_ratio", "refixation_ratio", "revisit_ratio"
        }  # fmt: skip
        assert scores["delta"] >= 0.0


def test_vit_appearance_trains_on_the_vit_features_and_evaluates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ckpt"
    args = ["train-scanpath", "--dataset", "synthsearch:4:seed=3:layout=grid:3x4", "--subjects", "2"]
    args += [*TINY_MODEL, "--appearance", "vit", "--vit-model", "random:vit-micro", "--epochs", "1"]
    assert main([*args, "--val-samples", "2", "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    config = json.loads((out / "config.json").read_text())["model"]
    assert config["appearance"] == "vit" and config["feature_model"] == "random:vit-micro"
    assert config["feature_dim"] > 0
    args = ["eval-scanpath", "--dataset", "synthsearch:2:seed=9:layout=grid:3x4", "--checkpoint", str(out)]
    assert main([*args, "--samples", "2", "--subjects", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["methods"]["oat_sampled"]["sequence_score"] <= 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # these two build the default training data before the bad value is met (~20 s each)
        pytest.param(
            ["train-scanpath", "--out", "x", "--crop", "big"],
            "--crop 'big' is not HxW",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ["train-scanpath", "--out", "x", "--appearance", "vit", "--vit-model", "nope:x"],
            "nope:x",
            marks=pytest.mark.slow,
        ),
        (["train-scanpath", "--out", "x", "--dataset", "synthscenes:5"], "synthsearch:N"),
        (["eval-scanpath", "--checkpoint", "/nonexistent/ckpt"], "no scanpath checkpoint"),
        (["eval-scanpath", "--samples", "0"], "--samples must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
