"""Dataset spec parsing: the one place that reads built-in dataset specs."""

import pytest

from vitscope.contracts.datasets import parse_dataset_spec, parse_layout, parse_search_spec, parse_synth_spec
from vitscope.contracts.errors import UserError


def test_dataset_specs_normalize_to_one_text():
    assert str(parse_dataset_spec("synthscenes:5")) == "synthscenes:5:seed=0"
    assert (
        str(parse_dataset_spec("synthsearch:2:layout=free:12:seed=1"))
        == "synthsearch:2:seed=1:layout=free:12"
    )


def test_unknown_dataset_names_both_built_ins():
    with pytest.raises(UserError, match="synthscenes:N"):
        parse_dataset_spec("imagenet:10")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("synthscenes:500", (500, 0)), ("synthscenes:1:seed=7", (1, 7)), (" synthscenes:20:seed=0 ", (20, 0))],
)
def test_parse_synth_spec_accepts_valid_specs(spec: str, expected: tuple[int, int]) -> None:
    assert parse_synth_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("synthscenes", "missing the count"),
        ("synthscenes:0", "'0'"),
        ("synthscenes:-3", "'-3'"),
        ("synthscenes:1e3", "'1e3'"),
        ("synthscenes:10:seed=-1", "'-1'"),
        ("synthscenes:10:seed=", "seed ''"),
        ("synthscenes:10:sed=1", "'sed=1'"),
        ("synthscenes:10:seed=1:x", "'seed=1:x'"),
        ("synthscene:10", "synthscenes:"),
        ("imagenet:10", "synthscenes:"),
    ],
)
def test_parse_synth_spec_rejects_bad_specs_naming_the_bad_part(spec: str, names: str) -> None:
    with pytest.raises(UserError, match=names):
        parse_synth_spec(spec)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("synthsearch:10", (10, 0, "grid:6x14")),
        ("synthsearch:10:seed=3", (10, 3, "grid:6x14")),
        ("synthsearch:10:seed=3:layout=grid:4x5", (10, 3, "grid:4x5")),
        ("synthsearch:2:layout=free:12:seed=1", (2, 1, "free:12")),
    ],
)
def test_parse_search_spec_accepts_valid_specs(spec: str, expected: tuple[int, int, str]) -> None:
    assert parse_search_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("synthsearch:x", "'x'"),
        ("synthsearch:10:layout=grid:0x5", "grid:0x5"),
        ("synthsearch:10:layout=hex:5", "hex:5"),
        ("synthsearch:10:layout=grid", "'grid'"),
        ("synthsearch:10:seed=1:seed=2", "seed is given twice"),
        ("synthsearch:10:colour=red", "'colour=red'"),
        ("synthscenes:10", "synthsearch:"),
    ],
)
def test_parse_search_spec_rejects_bad_specs_naming_the_bad_part(spec: str, names: str) -> None:
    with pytest.raises(UserError, match=names):
        parse_search_spec(spec)


def test_parse_layout_reads_grid_and_free() -> None:
    assert parse_layout("grid:6x14") == ("grid", 6, 14, 84)
    assert parse_layout("free:9") == ("free", 0, 0, 9)
