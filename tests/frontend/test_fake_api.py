"""The fake API follows the kinds' declarations: params, result arrays and summaries."""

from __future__ import annotations

from typing import Any

import pytest

from frontend.api import ApiClient, ApiError
from tests.frontend.fake_api import BACKBONE, LEFT_OUT, FakeJob, FakeModel, results_for, summary_for
from vitscope.contracts import kinds

INPUTS: tuple[dict[str, Any], ...] = (
    {"dataset": "synthscenes:6:seed=0"},
    {"images": ["a" * 64]},
    {"images": ["a" * 64, "b" * 64]},
)


def record(kind: kinds.Kind, inputs: dict[str, Any], model: str = "demo", **params: Any) -> dict[str, Any]:
    return {
        "kind": kind.name,
        "model": model,
        "inputs": inputs,
        "params": kind.params(**params).model_dump(mode="json"),
    }


@pytest.mark.parametrize("model", ["demo", BACKBONE])
@pytest.mark.parametrize("name", kinds.names())
@pytest.mark.parametrize("inputs", INPUTS)
def test_every_declared_kind_gets_results_its_schema_accepts(
    name: str, inputs: dict[str, Any], model: str
) -> None:
    kind = kinds.get(name)
    job = record(kind, inputs, model)
    arrays, summary = results_for(job, FakeModel()), summary_for(job, FakeModel())
    kinds.check_result(kind, arrays, summary)
    left_out = LEFT_OUT.get(name, {}).get(FakeJob(job, FakeModel()).objective, ())
    assert set(arrays) == set(kind.results) - set(left_out)
    assert summary["model"]["layers"] == FakeModel().layers
    assert summary["model"]["classifier"] == (model == "demo")


def test_a_backbone_without_a_probe_gets_only_task_free_head_importance() -> None:
    kind = kinds.get("head-importance")
    job = record(kind, INPUTS[0], BACKBONE, probe=False)
    arrays, summary = results_for(job, FakeModel()), summary_for(job, FakeModel())
    assert not {"accuracy_drop", "prob_after", "predictions"} & set(arrays)
    assert arrays["cls_cosine_after"].shape == (6, 3, 4)
    assert summary["objective"] == "task-free" and summary["probe"] is None
    assert summary["metrics"] == ["layer_impact", "cls_cosine_drop", "patch_change", "embedding_taylor"]
    assert summary["left_out"]["accuracy_drop"] == "the model has no classifier and probe=false"
    assert summary["model"]["labels"] == []


def test_a_backbone_on_labelled_images_scores_classes_through_a_probe() -> None:
    kind = kinds.get("head-importance")
    arrays = results_for(record(kind, INPUTS[0], BACKBONE), FakeModel())
    summary = summary_for(record(kind, INPUTS[0], BACKBONE), FakeModel())
    assert {"accuracy_drop", "cls_cosine_drop", "prob_after", "cls_cosine_after"} <= set(arrays)
    assert summary["objective"] == "probe" and summary["probe"]["held_out_accuracy"] == 0.87
    unlabelled = summary_for(record(kind, INPUTS[1], BACKBONE), FakeModel())
    assert unlabelled["objective"] == "task-free"


def test_a_backbone_eigencam_has_no_top5_and_places_uploads_in_their_pictures() -> None:
    kind = kinds.get("eigencam")
    job = record(kind, INPUTS[2], BACKBONE)
    arrays, summary = results_for(job, FakeModel()), summary_for(job, FakeModel())
    assert not {"top5_idx", "top5_prob", "gradcam", "rank_corr_gradcam"} & set(arrays)
    assert set(summary["left_out"]) == {"top5_idx", "top5_prob", "gradcam", "rank_corr_gradcam"}
    assert summary["top5"] == []
    assert arrays["original_sizes"].tolist() == [[48, 64], [48, 64]]
    assert arrays["crop_boxes"][0].tolist() == [8.0, 0.0, 56.0, 48.0]  # the centre square
    built_in = results_for(record(kind, INPUTS[0]), FakeModel())
    assert built_in["crop_boxes"][0].tolist() == [0.0, 0.0, 32.0, 32.0]


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
