"""`vitscope run`: the worker's analysis in-process, arrays as .npy, the summary as JSON."""

import json

import numpy as np
import pytest

from tests.utils.uploads import image_bytes, image_folder_zip
from vitscope.cli import main
from vitscope.commands.run import label_indices, parse_params
from vitscope.contracts.errors import UserError

FAST = ["--param", "baselines=false", "--param", "sanity_check=false"]


def test_run_writes_every_array_and_prints_the_summary_json(tmp_path, capsys):
    images = []
    for i, fmt in enumerate(["PNG", "JPEG"]):
        path = tmp_path / f"{i}.{fmt.lower()}"
        path.write_bytes(image_bytes(fmt, (40, 30), seed=i))
        images.append(str(path))
    out = tmp_path / "out"
    argv = ["run", "eigencam", "--model", "random:vit-micro", "--images", *images, "--labels", "star", "0"]
    assert main([*argv, "--out", str(out), "--json", "--device", "cpu", *FAST]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["outputs"] == str(out) and printed["labels"] == ["star", "circle"]
    assert np.load(out / "cam.npy", allow_pickle=False).shape == (2, 2, 4, 4)
    assert json.loads((out / "summary.json").read_text())["labels"] == ["star", "circle"]


def test_run_reads_an_image_folder_zip(tmp_path, capsys):
    archive = tmp_path / "set.zip"
    archive.write_bytes(image_folder_zip({"circle": 1, "star": 2}))
    assert (
        main(
            [
                "run",
                "eigencam",
                "--model",
                "random:vit-micro",
                "--zip",
                str(archive),
                "--out",
                str(tmp_path / "o"),
                *FAST,
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "labels.npy"), [0, 4, 4])


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--dataset", "synthscenes:2", "--param", "wibble=1"], "wibble"),
        (["--dataset", "synthscenes:0"], "synthscenes:0"),
        (["--images", "/nonexistent/x.png"], "cannot read"),
    ],
)
def test_bad_input_is_one_readable_line_and_exit_2(tmp_path, capsys, extra, words):
    assert main(["run", "eigencam", "--model", "random:vit-micro", *extra, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("vitscope: error:") and words in err[-1]


def test_params_are_json_when_they_parse_and_text_otherwise():
    assert parse_params(["layers=[0, 1]", "baselines=false", "dtype=bfloat16"]) == {
        "layers": [0, 1],
        "baselines": False,
        "dtype": "bfloat16",
    }
    with pytest.raises(UserError):
        parse_params(["novalue"])


def test_labels_are_indices_or_class_names():
    assert label_indices(["2", "Star"], ["circle", "square", "x", "star"]) == [2, 3]
    with pytest.raises(UserError, match="dog"):
        label_indices(["dog"], ["cat"])
