"""Every number and list of a job request is bounded before anything is queued."""

import pytest

from vitscope.contracts.datasets import MAX_OBJECTS, parse_dataset_spec
from vitscope.contracts.errors import UserError
from vitscope.contracts.jobs import JobSpecError, normalize_job
from vitscope.contracts.kinds.base import MAX_SEED


def job(kind="eigencam", inputs=None, model="demo", **params):
    return {"kind": kind, "model": model, "inputs": inputs or {"dataset": "synthscenes:2"}, "params": params}


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (job(layers=[0] * 10_000), ["params", "layers"]),
        (job(layers=[-257]), ["params", "layers", 0]),  # -1 is the last layer; beyond any model is not
        (job(random_seed=2**64), ["params", "random_seed"]),
        (job("head-importance", seed=MAX_SEED + 1), ["params", "seed"]),
        (job("attention-patterns", seed=-1), ["params", "seed"]),
        (job("scanpath", boxes=[[0, 0, 1, 1]] * (MAX_OBJECTS + 1)), ["params", "boxes"]),
        (job("scanpath", boxes=[[0, 0, 1e30, 1]]), ["params", "boxes", 0, 2]),
        (job("scanpath", seed=-5), ["params", "seed"]),
        (job(inputs={"images": ["a" * 64], "labels": [-7]}), ["inputs", "labels", 0]),
        (job(inputs={"images": ["a" * 64], "labels": [10**30]}), ["inputs", "labels", 0]),
        (job(inputs={"images": ["a" * 64] * 10_001}), ["inputs", "images"]),
        (job(model="a" * 300), ["model"]),
        (job(model="/" + "a" * 300), ["model"]),
        (job(model="~nobody-here/x"), ["model"]),
    ],
)
def test_out_of_range_requests_are_refused_naming_the_field(raw, where):
    with pytest.raises(JobSpecError) as caught:
        normalize_job(raw)
    assert [p["loc"][: len(where)] for p in caught.value.problems] == [where]


@pytest.mark.parametrize(
    "spec",
    [
        "synthsearch:1:layout=free:100000000",
        "synthsearch:1:layout=grid:100x100",
        "synthscenes:100001",
        "synthscenes:4:seed=99999999999999999999999",
        "synthsearch:4:seed=18446744073709551616",
    ],
)
def test_dataset_sizes_layouts_and_seeds_have_limits(spec):
    with pytest.raises(UserError):
        parse_dataset_spec(spec)


def test_the_largest_accepted_values_pass():
    assert parse_dataset_spec(f"synthscenes:100000:seed={MAX_SEED}").seed == MAX_SEED
    assert parse_dataset_spec(f"synthsearch:1:layout=free:{MAX_OBJECTS}").layout == f"free:{MAX_OBJECTS}"
    spec = normalize_job(job(inputs={"images": ["a" * 64], "labels": [2**31 - 1]}, random_seed=MAX_SEED))
    assert spec.inputs.labels == (2**31 - 1,)
