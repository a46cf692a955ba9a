"""The fake API follows the kinds' declarations: params, result arrays and summaries."""

from __future__ import annotations

from typing import Any

import pytest

from frontend.api import ApiClient, ApiError
from tests.frontend.fake_api import FakeModel, results_for, summary_for
from vitscope.contracts import kinds

INPUTS: tuple[dict[str, Any], ...] = (
    {"dataset": "synthscenes:6:seed=0"},
    {"images": ["a" * 64]},
    {"images": ["a" * 64, "b" * 64]},
)


def record(kind: kinds.Kind, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind.name,
        "model": "demo",
        "inputs": inputs,
        "params": kind.params().model_dump(mode="json"),
    }


@pytest.mark.parametrize("name", kinds.names())
@pytest.mark.parametrize("inputs", INPUTS)
def test_every_declared_kind_gets_results_its_schema_accepts(name: str, inputs: dict[str, Any]) -> None:
    kind = kinds.get(name)
    job = record(kind, inputs)
    arrays, summary = results_for(job, FakeModel()), summary_for(job, FakeModel())
    kinds.check_result(kind, arrays, summary)
    assert set(arrays) == set(kind.results)
    assert summary["model"]["layers"] == FakeModel().layers


def test_a_kind_without_tuned_values_gets_schema_valid_results(extra_kind: kinds.Kind) -> None:
    for inputs in INPUTS:
        job = record(extra_kind, inputs)
        arrays, summary = results_for(job, FakeModel()), summary_for(job, FakeModel())
        kinds.check_result(extra_kind, arrays, summary)
    assert arrays["norms"].shape == (2, 3, 17)  # N images, L layers, T = 1 + 4 x 4 tokens
    assert arrays["peak"].shape == (2, 3)
    single = results_for(record(extra_kind, INPUTS[1]), FakeModel())
    assert single["peak"].shape == (3,)  # a single input drops the N? dim
    assert summary["scale"] == "linear" and summary["grid"] == [0, 0]


def test_a_job_gets_its_kind_defaults_and_is_refused_unknown_params(api: ApiClient) -> None:
    record = api.submit("eigencam", "demo", {"dataset": "synthscenes:6:seed=0"}, {"relu": False})
    expected = kinds.get("eigencam").params.model_validate({"relu": False}).model_dump(mode="json")
    assert record["params"] == expected
    with pytest.raises(ApiError) as caught:
        api.submit("eigencam", "demo", {"dataset": "synthscenes:6:seed=0"}, {"colour": "red"})
    assert caught.value.status == 422 and caught.value.problems[0]["loc"] == ["params", "colour"]
    with pytest.raises(ApiError, match="unknown kind"):
        api.submit("no-such-kind", "demo", {}, {})
